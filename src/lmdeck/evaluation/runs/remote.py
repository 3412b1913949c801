"""Runs executed out of the gateway: the protocol of a run executor and the job file its worker reads.

An eval run asks for an executor by name (``RunRequest.runner``; ``local`` is the gateway itself).
The gateway resolves the dataset, prompt and evaluators, builds each row's chat body, and hands an
:class:`EvalJob` to the executor; the worker sends the bodies to the gateway over HTTP, scores the
replies with the same evaluators (:func:`lmdeck.evaluation.runs.runner.score_row`) and gives back one
:class:`~lmdeck.protocol.evaluation.RowResult` per row::

    job = EvalJob(run_id="run_1", base_url="http://gw:8080/v1", token=token, evaluators=["exact"],
                  concurrency=4, rows=[EvalJobRow(idx=0, body={...}, input="2+2", expected="4")])
    await executor.execute(job, on_results)       # on_results(batch) as rows come back
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.evaluation import RowResult

#: The job file in a job directory (it holds a token: written readable by its owner only).
JOB_FILE = "eval-job.json"
#: The worker's output in a job directory: one ``RowResult`` as JSON per line, appended as rows finish.
RESULTS_FILE = "results.jsonl"


class EvalJobRow(BaseModel):
    """One dataset row as the worker sends it: the chat body is already built."""

    model_config = ConfigDict(extra="forbid")

    idx: int
    body: dict[str, Any]
    input: Any = None
    expected: Any = None
    metadata: dict[str, Any] | None = None


class EvalJob(BaseModel):
    """What a worker needs to run an eval run's rows (``eval-job.json``)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    base_url: str = Field(description="the gateway's OpenAI-compatible base URL, ending in /v1")
    token: str = Field(description="a bearer token issued for this run and revoked when it ends")
    evaluators: list[str] = Field(description="evaluator specs, as the run request named them")
    concurrency: int = Field(ge=1)
    rows: list[EvalJobRow]


#: Called with each batch of results as they come back (written to the run store).
ResultSink = Callable[[list[RowResult]], Awaitable[None]]


class RemoteRunError(Exception):
    """The executor's job ended without every row's result (its message says how it ended)."""


class RunExecutor(Protocol):
    """Runs an :class:`EvalJob` somewhere other than the gateway (see the module docstring)."""

    name: str
    #: The gateway's OpenAI-compatible base URL as the worker reaches it (``http://gw:8080/v1``).
    base_url: str

    def refusal(self, model: str | None) -> str | None:
        """Why a run with these options cannot run here (an error message naming the fix), else None."""
        ...

    async def execute(self, job: EvalJob, on_results: ResultSink) -> None:
        """Run ``job`` to its end, passing results to ``on_results`` as they come; ``RemoteRunError`` when it
        ends without all of them. Cancelled, it stops the job before re-raising."""
        ...
