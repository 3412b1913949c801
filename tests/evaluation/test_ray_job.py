"""The Ray run executor's pieces that need no cluster: reading a worker's results as they are appended,
the entrypoint, and the run token's life."""

from __future__ import annotations

from pathlib import Path

from lmdeck.evaluation.identity import ServiceIdentity
from lmdeck.evaluation.runs.ray_job import RayRunExecutor, ResultsTail
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.evaluation import RowResult


def test_results_are_read_once_and_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    tail = ResultsTail(path)
    assert tail.read() == []  # not written yet
    first, second = RowResult(idx=0, output="4"), RowResult(idx=1, output="6")
    half = second.model_dump_json()
    path.write_text(first.model_dump_json() + "\n" + half[:10])
    assert [r.idx for r in tail.read()] == [0]
    with path.open("a") as f:
        f.write(half[10:] + "\n")
    assert [(r.idx, r.output) for r in tail.read()] == [(1, "6")]
    assert tail.read() == []


def test_the_entrypoint_quotes_the_python_and_the_directory() -> None:
    executor = RayRunExecutor(base_url="http://gw/v1", jobs_dir=Path("/shared"), python="/opt/my python")
    assert executor.entrypoint(Path("/shared/run 1")) == (
        "'/opt/my python' -m lmdeck.evaluation.runs.ray_worker '/shared/run 1'"
    )
    assert executor.refusal(None) is None
    assert "runner 'local'" in (executor.refusal("calc-bot@2") or "")


async def test_a_run_token_stands_for_its_principal_until_revoked() -> None:
    identity = ServiceIdentity()
    authenticator = identity.wrap(_Nobody())
    principal = Principal(key_id="key_1", role="developer", team_id="team_blue", name="blue dev")
    token = identity.issue(principal)
    assert await authenticator.authenticate(token) == principal
    identity.revoke(token)
    assert await authenticator.authenticate(token) is None
    identity.revoke(identity.token)  # the service's own token is not a run token
    assert await authenticator.authenticate(identity.token) == identity.principal


class _Nobody:
    """A fake authenticator that knows no token."""

    async def authenticate(self, token: str) -> Principal | None:
        return None
