"""The certificate check of ``lmdeck serve --tls-cert/--tls-key`` and the settings' pair rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.cli.tls import tls_problem
from lmdeck.config import ConfigFileError, load_settings
from lmdeck.testing.certs import self_signed_pair


def test_a_matching_pair_has_no_problem(tmp_path: Path) -> None:
    cert, key = self_signed_pair(tmp_path)
    assert tls_problem(cert, key) is None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    cert, _ = self_signed_pair(tmp_path)
    problem = tls_problem(cert, tmp_path / "absent.key")
    assert problem is not None and problem.startswith(f"tls_key {tmp_path / 'absent.key'} cannot be read")


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed_pair(tmp_path / "a")
    _, other_key = self_signed_pair(tmp_path / "b")
    problem = tls_problem(cert, other_key)
    assert problem is not None and "not a usable certificate and key" in problem


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed_pair(tmp_path)
    cert.write_text("not a certificate")
    assert "not a usable certificate and key" in (tls_problem(cert, key) or "")


@pytest.mark.parametrize(("given", "missing"), [("LMDECK_TLS_CERT", "tls_key"), ("LMDECK_TLS_KEY", "tls_cert")])
def test_one_of_the_pair_alone_is_a_config_error(tmp_path: Path, given: str, missing: str) -> None:
    with pytest.raises(ConfigFileError, match=f"{missing} is not"):
        load_settings(environ={given: str(tmp_path / "x.pem")})


def test_both_from_the_environment_make_https(tmp_path: Path) -> None:
    env = {"LMDECK_TLS_CERT": str(tmp_path / "c.pem"), "LMDECK_TLS_KEY": str(tmp_path / "k.pem")}
    settings = load_settings(environ=env)
    assert settings.scheme == "https" and settings.tls_key == tmp_path / "k.pem"
    assert load_settings(environ={}).scheme == "http"
