"""The training worker: ``python -m lmdeck.finetune.training.worker JOB_DIR``.

Trains the LoRA adapter a job directory describes (see :mod:`lmdeck.finetune.training.spec`), appending
progress events to its ``progress.jsonl``. Run again on the same directory after it was killed, it
resumes from the newest checkpoint. SIGTERM (or SIGINT) ends it at the next step boundary with a
``cancelled`` event. Exit status: 0 succeeded, 1 failed (a ``failed`` event says why), 3 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType

from lmdeck.finetune.training.spec import JobDir
from lmdeck.protocol.training import ProgressEvent

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 3


def run(job_dir: Path) -> int:
    """Train the job in ``job_dir``; the exit status (see the module docstring)."""
    job = JobDir(job_dir)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        # Imported here: torch and transformers take seconds to import, and a bad directory fails first.
        job.read_spec()
        from lmdeck.finetune.training.lora import train_job

        event = train_job(job, stop)
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
        try:
            job.append_event(ProgressEvent(kind="failed", at=time.time(), message=message))
        except OSError:
            pass
        return EXIT_FAILED
    return EXIT_CANCELLED if event.kind == "cancelled" else EXIT_SUCCEEDED


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train the LoRA adapter a job directory describes")
    parser.add_argument("job_dir", type=Path, help="directory holding job.json (see lmdeck.finetune.training.spec)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(args.job_dir))


if __name__ == "__main__":
    main()
