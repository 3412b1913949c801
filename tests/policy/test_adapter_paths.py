"""Who may point a model version at which LoRA adapter directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.credentials import CredentialGate
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers.egress import EgressPolicy
from lmdeck.registry.resolver import delegate_target
from lmdeck.registry.versions import Version
from lmdeck.settings import ConfigError, Settings, TargetConfig

ROLES: dict[str, Role] = {"key:key_admin": "admin", "key:key_dev": "developer"}
ADMIN = Principal(key_id="key_admin", role="admin")
DEV = Principal(key_id="key_dev", role="developer", team_id="team_1")
OTHER_DEV = Principal(key_id="key_other", role="developer", team_id="team_2")
LONE_DEV = Principal(key_id="key_lone", role="developer")


class FakeJobs:
    """A fake job store: job id → (team id, key id) of its creator."""

    owners = {"ft-1": ("team_1", "key_dev"), "ft-2": ("team_2", "key_other"), "ft-3": (None, "key_lone")}

    def owner_of_job(self, job_id: str) -> tuple[str | None, str | None] | None:
        return self.owners.get(job_id)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    adapter = tmp_path / "data" / "finetune" / "jobs" / "ft-1" / "adapter"
    adapter.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "data"


def gate(data_dir: Path) -> CredentialGate:
    settings = Settings.model_validate({"data_dir": str(data_dir)})
    gate = CredentialGate(settings, EgressPolicy.from_settings(settings), author_role=ROLES.get)
    gate.adapters.bind_jobs(FakeJobs())
    return gate


def spec(**fields: object) -> ModelVersionSpec:
    return ModelVersionSpec.model_validate({"provider": "local", "model": "demo", "base_model": "demo", **fields})


def test_a_non_admin_names_only_adapters_under_the_finetune_directory(data_dir: Path) -> None:
    g = gate(data_dir)
    ours = data_dir / "finetune" / "jobs" / "ft-1" / "adapter"
    g.check_version(spec(adapter=str(ours)), DEV)
    outside = [
        str(data_dir.parent / "elsewhere"),
        "/etc",
        str(data_dir / "finetune" / ".." / "lmdeck.db"),  # `..` is resolved before the check
        str(data_dir / "finetune-other"),  # a sibling whose name only starts the same
    ]
    for path in outside:
        for fields in ({"adapter": path}, {"options": {"adapter": path}}):
            with pytest.raises(APIError) as refused:
                g.check_version(spec(**fields), DEV, field="versions.0")
            assert refused.value.status == 403
            assert refused.value.code == "adapter_path_forbidden"
            assert refused.value.param == f"versions.0.{next(iter(fields))}" + (
                ".adapter" if "options" in fields else ""
            )
            assert "only an admin may name adapters elsewhere" in refused.value.message
            g.check_version(spec(**fields), ADMIN)  # an admin may name any directory


def test_a_non_admin_names_only_adapters_of_its_own_teams_jobs(data_dir: Path) -> None:
    g = gate(data_dir)
    jobs = data_dir / "finetune" / "jobs"
    g.check_version(spec(adapter=str(jobs / "ft-2" / "adapter")), OTHER_DEV)
    g.check_version(spec(adapter=str(jobs / "ft-3" / "checkpoints" / "checkpoint-4")), LONE_DEV)
    refused = [
        (DEV, jobs / "ft-2" / "adapter"),  # team_2's job
        (OTHER_DEV, jobs / "ft-1" / "adapter"),  # team_1's job
        (OTHER_DEV, jobs / "ft-2" / ".." / "ft-1" / "adapter"),
        (LONE_DEV, jobs / "ft-1" / "adapter"),  # a key without a team: only the jobs it created
        (DEV, jobs / "ft-3" / "adapter"),
        (DEV, jobs / "ft-none" / "adapter"),  # no such job
        (DEV, jobs),
        (DEV, data_dir / "finetune" / "elsewhere"),  # under finetune/ but in no job's directory
    ]
    for principal, path in refused:
        with pytest.raises(APIError) as error:
            g.check_version(spec(options={"adapter": str(path)}), principal)
        assert (error.value.status, error.value.code, error.value.param) == (
            403,
            "adapter_path_forbidden",
            "options.adapter",
        ), path
        g.check_version(spec(options={"adapter": str(path)}), ADMIN)


def test_without_the_fine_tuning_service_no_job_directory_is_anyones(data_dir: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(data_dir)})
    bare = CredentialGate(settings, EgressPolicy.from_settings(settings), author_role=ROLES.get)
    with pytest.raises(APIError, match="not the directory of a fine-tuning job of your team"):
        bare.check_version(spec(adapter=str(data_dir / "finetune" / "jobs" / "ft-1" / "adapter")), DEV)


def test_a_symlink_out_of_the_finetune_directory_is_refused(data_dir: Path) -> None:
    link = data_dir / "finetune" / "jobs" / "escape"
    os.symlink(data_dir.parent / "elsewhere", link)
    with pytest.raises(APIError, match="is outside"):
        gate(data_dir).check_version(spec(adapter=str(link)), DEV)


def test_an_adapter_that_is_not_a_path_is_a_400(data_dir: Path) -> None:
    with pytest.raises(APIError) as refused:
        gate(data_dir).check_version(spec(options={"adapter": ["x"]}), ADMIN)
    assert (refused.value.status, refused.value.param) == (400, "options.adapter")


def version(fields: dict[str, object], created_by: str) -> Version[ModelVersionSpec]:
    return Version("model", "counter", 1, spec(**fields), "sha256:0", 0.0, created_by)


def test_serving_passes_the_adapter_and_checks_the_writer_again(data_dir: Path) -> None:
    g = gate(data_dir)
    ours = str(data_dir / "finetune" / "jobs" / "ft-1" / "adapter")
    outer = TargetConfig(provider="registry", model="counter@candidate", options={"adapter": "/ignored"})
    target = delegate_target(version({"adapter": ours}, "key:key_dev"), outer, g)
    assert (target.provider, target.model, target.options["adapter"]) == ("local", "demo", ours)
    # A symlink put in place after the write is caught when the version is served.
    link = data_dir / "finetune" / "jobs" / "later"
    os.symlink("/etc", link)
    with pytest.raises(ConfigError, match="which is not an admin"):
        delegate_target(version({"adapter": str(link)}, "key:key_dev"), outer, g)
    assert delegate_target(version({"adapter": str(link)}, "key:key_admin"), outer, g).options["adapter"] == str(link)
