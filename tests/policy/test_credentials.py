"""Who may name which credential, and what a stored version's calls carry."""

from __future__ import annotations

import pytest

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.credentials import CredentialGate, host_matches
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers.egress import EgressPolicy
from lmdeck.settings import ConfigError, SecretRef, Settings

ROLES: dict[str, Role] = {"key:key_admin": "admin", "key:key_dev": "developer"}
ADMIN = Principal(key_id="key_admin", role="admin")
SEARCH_DEV = Principal(key_id="key_dev", role="developer", team_id="team_1")
ADS_DEV = Principal(key_id="key_ads", role="developer", team_id="team_2")


def gate() -> CredentialGate:
    settings = Settings.model_validate(
        {
            "credentials": {
                "search": {"api_key": {"$env": "SEARCH_KEY"}, "hosts": ["api.openai.com"], "teams": ["search"]},
                "shared": {"api_key": {"$env": "SHARED_KEY"}, "hosts": ["vllm.internal:8000"], "teams": ["*"]},
                "admins": {"api_key": {"$env": "ADMIN_ONLY_KEY"}, "hosts": ["api.openai.com"]},
            }
        }
    )
    return CredentialGate(
        settings,
        EgressPolicy.from_settings(settings),
        author_role=ROLES.get,
        default_base_url=lambda provider: "https://api.openai.com/v1" if provider == "openai" else None,
        team_name={"team_1": "search", "team_2": "ads"}.get,
    )


def spec(**fields: object) -> ModelVersionSpec:
    return ModelVersionSpec.model_validate({"model": "m", **fields})


def test_teams_are_matched_by_name_or_id_and_the_wildcard_lets_every_team_in() -> None:
    g = gate()
    g.check_version(spec(credential="search"), SEARCH_DEV)
    g.check_version(spec(credential="shared", base_url="http://vllm.internal:8000/v1"), ADS_DEV)
    for who, name in ((ADS_DEV, "search"), (SEARCH_DEV, "admins")):
        with pytest.raises(APIError) as refused:
            g.check_version(spec(credential=name), who)
        assert refused.value.status == 403 and refused.value.param == "credential"
    g.check_version(spec(credential="admins"), ADMIN)


def test_a_credential_goes_only_to_its_hosts_and_ports() -> None:
    g = gate()
    with pytest.raises(APIError, match=r"only sent to vllm\.internal:8000"):
        g.check_version(spec(credential="shared", base_url="http://vllm.internal:8001/v1"), ADMIN)
    with pytest.raises(ConfigError, match="only sent to"):
        g.api_key_for(spec(credential="search", base_url="https://api.openai.com.evil.example/v1"), "key:key_dev")
    assert host_matches("api.openai.com", "api.openai.com", 443)
    assert not host_matches("api.openai.com:443", "api.openai.com", 8443)


def test_a_versions_own_key_is_honoured_only_while_an_admin_wrote_it() -> None:
    g = gate()
    own = spec(api_key={"$env": "VENDOR_KEY"})
    with pytest.raises(APIError) as refused:
        g.check_version(own, SEARCH_DEV, field="models.0.versions.0")
    assert refused.value.param == "models.0.versions.0.api_key" and refused.value.code == "secret_ref_forbidden"
    g.check_version(own, ADMIN)
    assert g.api_key_for(own, "key:key_admin") == SecretRef.model_validate({"$env": "VENDOR_KEY"})
    for author in ("key:key_dev", "key:key_gone", None):
        with pytest.raises(ConfigError, match="not an admin"):
            g.api_key_for(own, author)
    assert g.api_key_for(spec(), "key:key_dev") is None


def test_lmdecks_own_secrets_are_never_a_versions_key_even_for_an_admin() -> None:
    g = gate()
    for name in ("LMDECK_ADMIN_KEY", "LMDECK_MASTER_KEY"):
        with pytest.raises(APIError, match="own secret"):
            g.check_version(spec(api_key={"$env": name}), ADMIN)
        with pytest.raises(ConfigError, match="own secret"):
            g.api_key_for(spec(api_key={"$env": name}), "key:key_admin")
    with pytest.raises(ValueError, match="own secret"):
        Settings.model_validate(
            {"routes": [{"name": "r", "targets": [{"model": "m", "api_key": {"$env": "LMDECK_ADMIN_KEY"}}]}]}
        )
