"""The worker of an eval run on Ray: ``python -m lmdeck.evaluation.runs.ray_worker JOB_DIR``.

Reads ``JOB_DIR/eval-job.json`` (:class:`~lmdeck.evaluation.runs.remote.EvalJob`), sends each row's
body to the gateway over HTTP (``concurrency`` at a time, with the run's token), scores the reply
with the run's evaluators exactly as the gateway would (:func:`~lmdeck.evaluation.runs.runner.score_row`)
and appends each row's result to ``JOB_DIR/results.jsonl`` as soon as it is scored. Exit status 0
when every row has a result (a row whose request failed is a result with its error), 2 when the job
file is missing or invalid.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import openai

from lmdeck.evaluation.base import EvaluatorContext
from lmdeck.evaluation.http_inference import HttpInference
from lmdeck.evaluation.registry import load_evaluators
from lmdeck.evaluation.runs.remote import JOB_FILE, RESULTS_FILE, EvalJob
from lmdeck.evaluation.runs.runner import Row, score_row
from lmdeck.protocol.evaluation import EvaluatorSpec


async def run_job(job: EvalJob, results: Path) -> int:
    """Run every row of ``job``, appending results to ``results``; the number of rows run."""
    client = openai.AsyncOpenAI(base_url=job.base_url, api_key=job.token, max_retries=0, timeout=600)
    inference = HttpInference(client)
    specs = [EvaluatorSpec.parse(s) for s in job.evaluators]
    evaluators = load_evaluators().create_all(specs, EvaluatorContext(inference))
    semaphore = asyncio.Semaphore(job.concurrency)
    done = 0
    with results.open("a", encoding="utf-8") as out:

        async def one(item: int) -> None:
            nonlocal done
            job_row = job.rows[item]
            row = Row(job_row.input, job_row.expected, job_row.metadata)
            async with semaphore:
                result = await score_row(job_row.idx, row, job_row.body, evaluators, inference)
            out.write(result.model_dump_json() + "\n")
            out.flush()
            done += 1

        try:
            await asyncio.gather(*(one(i) for i in range(len(job.rows))))
        finally:
            await client.close()
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lmdeck.evaluation.runs.ray_worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    try:
        job = EvalJob.model_validate_json((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {job_dir / JOB_FILE}: {exc}", file=sys.stderr)
        return 2
    done = asyncio.run(run_job(job, job_dir / RESULTS_FILE))
    print(f"eval run {job.run_id}: {done} of {len(job.rows)} rows scored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
