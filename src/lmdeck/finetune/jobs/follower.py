"""Following a training worker: ``progress.jsonl`` read in a thread of its own, the job updated as
lines arrive (progress, the loss curve as ``metrics`` events, checkpoints), until the worker ends.

The worker appends one :class:`~lmdeck.protocol.training.ProgressEvent` per line and flushes it; the
follower reads from the byte offset it stopped at (saved with the job, so a restarted gateway does
not repeat the curve), keeps a partial last line for the next read, and asks the runner whether the
worker still runs when nothing new came::

    follower = ProgressFollower(store, record, runner, job_dir)
    ending = await follow(follower, handle, wake)      # "succeeded", "failed", "cancelled", "exited"...
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from lmdeck.finetune.jobs.stages import JobRunner
from lmdeck.finetune.jobs.store import JobRecord, JobStore
from lmdeck.protocol.fine_tuning import JobProgress
from lmdeck.protocol.training import ProgressEvent

log = logging.getLogger(__name__)

#: Seconds between reads of ``progress.jsonl`` while nothing new arrives.
POLL_S = 0.5
#: How often a worker that vanished (a runner's ``lost``) is started again before the job fails.
MAX_RESTARTS = 3
Ending = Literal["succeeded", "failed", "cancelled", "exited", "stopped"]


class ProgressFollower:
    """Reads one job's progress file and applies each event to the stored job (blocking; see :meth:`run`)."""

    def __init__(
        self, store: JobStore, record: JobRecord, runner: JobRunner, job_dir: Path, *, poll_s: float = POLL_S
    ) -> None:
        self.store = store
        self.job_id = record.id
        self.runner = runner
        self.path = job_dir / "progress.jsonl"
        self.job_dir = job_dir
        self.offset = record.runner.progress_offset
        self.poll_s = poll_s
        self.stop = threading.Event()
        self.message: str | None = None
        self.restarts = 0

    def read(self) -> list[ProgressEvent]:
        """The complete lines written since the last read (a line still being written waits)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                events.append(ProgressEvent.model_validate_json(line))
            except ValidationError:
                log.warning("job %s: ignoring a progress line that is not a ProgressEvent: %r", self.job_id, line[:200])
        return events

    def apply(self, events: list[ProgressEvent]) -> Ending | None:
        """Store what ``events`` say; the worker's ending when one of them is final."""
        record = self.store.get(self.job_id)
        if record is None or record.final:
            return "stopped"
        ending: Ending | None = None
        progress = record.job.progress
        for event in events:
            if event.kind == "step":
                progress = _step(progress, event)
                loss = f"{event.loss:.4f}" if event.loss is not None else "n/a"
                self.store.add_event(
                    self.job_id,
                    f"Step {event.step}/{event.total_steps}: training loss={loss}",
                    type="metrics",
                    data=_metrics(event),
                    at=event.at,
                )
            elif event.kind == "evaluation":
                progress = progress.model_copy(update={"eval_loss": event.eval_loss})
                self.store.add_event(
                    self.job_id,
                    f"Step {event.step}/{event.total_steps}: validation loss={event.eval_loss}",
                    type="metrics",
                    data=_metrics(event),
                    at=event.at,
                )
            elif event.kind == "checkpoint":
                metrics = {"train_loss": progress.loss, "valid_loss": progress.eval_loss}
                path = event.path or str(self.job_dir / "checkpoints" / f"checkpoint-{event.step}")
                if self.store.add_checkpoint(self.job_id, event.step, path, metrics, event.at):
                    self.store.add_event(self.job_id, f"Checkpoint at step {event.step}", at=event.at)
            elif event.kind == "started":
                progress = progress.model_copy(update={"total_steps": event.total_steps or progress.total_steps})
                self.store.add_event(
                    self.job_id, event.message or f"Training worker started at step {event.step}", at=event.at
                )
            else:
                if event.trained_tokens is not None:
                    record.job.trained_tokens = event.trained_tokens
                if event.kind == "succeeded":
                    progress = progress.model_copy(update={"stage": "evaluate", "eta_s": 0.0})
                self.message = event.message
                ending = (
                    "succeeded" if event.kind == "succeeded" else "failed" if event.kind == "failed" else "cancelled"
                )
            if event.trained_tokens is not None:
                record.job.trained_tokens = event.trained_tokens
        record.job.progress = progress
        record.runner.progress_offset = self.offset
        self.store.save(record)
        return ending

    def run(self, handle: str) -> Ending:
        """Follow until the worker ends (or :attr:`stop` is set); restarts a lost worker up to
        :data:`MAX_RESTARTS` times (it resumes from its newest checkpoint)."""
        while not self.stop.is_set():
            events = self.read()
            if events:
                ending = self.apply(events)
                if ending is not None:
                    return ending
                continue
            state = self.runner.state(handle)
            if state != "running":
                events = self.read()  # what it wrote just before it ended
                ending = self.apply(events) if events else None
                if ending is not None:
                    return ending
                if state == "lost" and self.restarts < MAX_RESTARTS:
                    self.restarts += 1
                    handle = self.runner.start(self.job_dir)
                    record = self.store.get(self.job_id)
                    if record is not None:
                        record.runner.handle = handle
                        self.store.save(record)
                        self.store.add_event(
                            self.job_id, f"Training worker lost: started again ({handle})", level="warn"
                        )
                    continue
                self.message = f"the training worker exited without a result: see {self.job_dir / 'worker.log'}"
                return "exited"
            self.stop.wait(self.poll_s)
        return "stopped"


def _step(progress: JobProgress, event: ProgressEvent) -> JobProgress:
    return progress.model_copy(
        update={
            "step": event.step,
            "total_steps": event.total_steps or progress.total_steps,
            "loss": event.loss if event.loss is not None else progress.loss,
            "tokens_per_s": event.tokens_per_s,
            "eta_s": event.eta_s,
        }
    )


def _metrics(event: ProgressEvent) -> dict[str, float | int | None]:
    return {
        "step": event.step,
        "total_steps": event.total_steps,
        "epoch": event.epoch,
        "train_loss": event.loss,
        "valid_loss": event.eval_loss,
        "learning_rate": event.learning_rate,
        "tokens_per_s": event.tokens_per_s,
        "eta_s": event.eta_s,
    }


async def follow(follower: ProgressFollower, handle: str, wake: Callable[[], None]) -> Ending:
    """Run ``follower`` in a thread of its own until the worker behind ``handle`` ends; ``wake`` is
    called (from that thread) when it does. Returns how it ended (:attr:`ProgressFollower.message`
    says why for ``failed`` and ``exited``)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Ending] = loop.create_future()

    def settle(ending: Ending | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(ending or "stopped")

    def work() -> None:
        try:
            ending = follower.run(handle)
        except Exception as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, ending, None)
        wake()

    threading.Thread(target=work, name=f"follow-{follower.job_id}", daemon=True).start()
    try:
        return await done
    finally:
        follower.stop.set()
