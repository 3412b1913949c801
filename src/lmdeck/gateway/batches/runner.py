"""The batch runner: background tasks, owned by the app's lifespan, that run each batch's rows.

    runner = BatchRunner(store, files, rows, WorkClaims(db, ttl_s=30.0), concurrency=8)
    await runner.start()                  # adopts every unfinished batch no live process claims
    job = await runner.create(principal, request)   # BatchObject in ``validating``; runs in the background
    runner.live("batch_…")                # the running batch's object, counts up to date, or None
    await runner.cancel(job)              # ``cancelling``; in-flight rows finish, then ``cancelled``
    await runner.stop()                   # in-flight rows finish and are kept; the rest wait for a restart

A batch is ``validating`` while its input file is read and checked (every line's ``url`` must be the
batch's ``endpoint``: a line that differs fails the batch, naming it), then ``in_progress`` while its
rows run, at most ``concurrency`` at once, through :class:`~.rows.BatchRows`. Each finished row's line
is appended to ``output.jsonl`` (2xx answers) or ``errors.jsonl`` (the rest) under
``<files>/batches/<id>/``, flushed to disk, and then its line number is added to the batch's done-set
in the database; a restarted gateway reads the done-set (and any line on disk the done-set missed)
and runs only the other rows. When every row is done the batch is ``finalizing`` while the two files
become file objects (purpose ``batch_output``), then ``completed``. Rows not run when the completion
window ends are error lines (``batch_expired``) of an ``expired`` batch.

Several processes may share the store (replicas, ``lmdeck serve --workers``): each batch runs in the
process that holds its :class:`~lmdeck.db.claims.WorkClaims` claim (kind ``batch``). The runner claims a
batch it creates, renews its claims every ``ttl_s / 2`` seconds and releases each when the batch ends
or the runner stops. At start and at each renewal it adopts the unfinished batches whose claim is
absent or expired (their process died or stopped), so a batch a live process runs is never resumed
by another. A process that finds its claim taken (it could not renew for ``ttl_s``) stops taking
that batch's rows. A cancel sent to a process that does not run the batch is stored, and the running
process picks it up at its next renewal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson

from lmdeck.db.claims import WorkClaims
from lmdeck.gateway.batches.files import FileStore, check_batch_file, new_id
from lmdeck.gateway.batches.rows import BatchRows, RowResult, expired_line
from lmdeck.gateway.batches.store import BatchJob, BatchStore
from lmdeck.pipeline.context import RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.protocol.batches import FINAL_STATUSES, BatchCreateRequest, BatchErrorData, BatchErrors, BatchObject
from lmdeck.protocol.files import BatchInputLine

log = logging.getLogger(__name__)

#: The completion windows a batch may ask for, in seconds.
WINDOWS = {"24h": 24 * 3600}

#: The kind of a batch's work claim.
CLAIM_KIND = "batch"


class BatchFailed(Exception):
    """The input cannot run at all: the batch ends ``failed`` with these errors."""

    def __init__(self, errors: list[BatchErrorData]) -> None:
        super().__init__(errors[0].message if errors else "failed")
        self.errors = errors


class BatchOutputs:
    """The output and error files of one batch, appended and flushed to disk line by line."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = folder
        self.output = folder / "output.jsonl"
        self.errors = folder / "errors.jsonl"
        self._fds: dict[bool, int] = {}

    def recovered(self) -> set[str]:
        """The custom ids already on disk; a line torn by a crash is cut off first."""
        found: set[str] = set()
        for path in (self.output, self.errors):
            if not path.exists():
                continue
            data = path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) != len(data):
                with path.open("r+b") as fh:
                    fh.truncate(len(whole))
            for raw in whole.splitlines():
                if raw.strip():
                    found.add(str(orjson.loads(raw)["custom_id"]))
        return found

    def append(self, results: list[RowResult]) -> None:
        for ok in (True, False):
            data = b"".join(r.text + b"\n" for r in results if r.ok is ok)
            if not data:
                continue
            fd = self._fds.get(ok)
            if fd is None:
                path = self.output if ok else self.errors
                fd = self._fds[ok] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(fd, data)
            os.fsync(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class BatchRunner:
    """Runs batches in the background (see the module docs)."""

    def __init__(
        self, store: BatchStore, files: FileStore, rows: BatchRows, claims: WorkClaims, *, concurrency: int = 8
    ) -> None:
        self.store = store
        self.files = files
        self.rows = rows
        self.claims = claims
        self.concurrency = concurrency
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, BatchJob] = {}
        self._cancelled: set[str] = set()
        #: Per running batch: set when it must stop taking rows (cancelled, or the gateway stops).
        self._halt: dict[str, asyncio.Event] = {}
        #: Per running batch: the lines finished by this process.
        self._finished: dict[str, set[int]] = {}
        #: Batches whose claim another process took: they stop here without finishing.
        self._lost: set[str] = set()
        #: Batches being created here: claimed, not yet spawned.
        self._creating: set[str] = set()
        self._stopping = False
        self._tending = Poller(
            self._tend,
            interval=claims.ttl_s / 2,
            name="lmdeck-batch-claims",
            log=log,
            failure=f"renewing or adopting batches failed; retrying in {claims.ttl_s / 2:g}s",
        )

    # -- the API's side ---------------------------------------------------------------------------

    async def create(self, principal: Principal, request: BatchCreateRequest) -> BatchObject:
        """A new batch of ``principal``'s key, run in the background. Raises a 404 naming the input file
        when this key's team has no such file."""
        meta = await self.files.get(request.input_file_id, team_id=principal.team_id, key_id=principal.key_id)
        if meta is None or meta.purpose != "batch":
            raise APIError(
                404,
                f"no batch input file {request.input_file_id!r} for this key's team: upload one with "
                "POST /v1/files (purpose 'batch')",
                param="input_file_id",
                code="file_not_found",
            )
        now = int(time.time())
        batch = BatchObject(
            id=new_id("batch"),
            endpoint=request.endpoint,
            input_file_id=request.input_file_id,
            completion_window=request.completion_window,
            created_at=now,
            expires_at=now + WINDOWS[request.completion_window],
            metadata=request.metadata,
        )
        job = BatchJob(batch, principal.team_id, principal.key_id)
        # Claimed before it is stored: no other process can adopt it in between.
        self._creating.add(batch.id)
        try:
            await asyncio.to_thread(self.claims.claim, CLAIM_KIND, batch.id)
            await self.store.create(job)
            self.spawn(job)
        finally:
            self._creating.discard(batch.id)
        return batch

    def live(self, batch_id: str) -> BatchJob | None:
        """The batch as it runs now (counts up to date), or None when it is not running here."""
        return self._live.get(batch_id)

    async def cancel(self, job: BatchJob) -> BatchObject:
        """Ask a batch to stop: ``cancelling`` now, ``cancelled`` once its in-flight rows are in.
        Raises a 409 naming the status of a batch that has ended."""
        running = self._live.get(job.batch.id, job)
        batch = running.batch
        if batch.status in FINAL_STATUSES:
            raise APIError(
                409,
                f"batch {batch.id!r} is {batch.status} and cannot be cancelled",
                param="batch_id",
                code="batch_not_cancellable",
            )
        if batch.status != "cancelling":
            batch.status = "cancelling"
            batch.cancelling_at = int(time.time())
            self._cancelled.add(batch.id)
            self._halt.setdefault(batch.id, asyncio.Event()).set()
            await asyncio.to_thread(self.store.save, running)
        # Run here to its end only when no live process runs it (that one sees the cancel itself).
        here = batch.id in self._tasks or batch.id in self._creating
        if not here and not self._stopping and await asyncio.to_thread(self.claims.claim, CLAIM_KIND, batch.id):
            self.spawn(running)
        return batch

    # -- lifetime ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt the unfinished batches no live process claims, then keep claims and adopt every
        ``ttl_s / 2`` seconds."""
        self._stopping = False
        await self._adopt()
        self._tending.start()

    async def stop(self) -> None:
        """Stop taking rows; wait for the rows in flight to finish and be kept; release the claims."""
        self._stopping = True
        await self._tending.stop()
        for halt in self._halt.values():
            halt.set()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _tend(self) -> None:
        """Renew the claims of the batches running here, stop those whose claim was lost, pick up a
        cancel stored by another process, and adopt what no live process claims."""
        running = list(self._tasks)
        lost = await asyncio.to_thread(self.claims.renew, CLAIM_KIND, running)
        for batch_id in lost:
            if batch_id in self._tasks:
                log.warning("batch %s: another process claimed it; it stops here", batch_id)
                self._lost.add(batch_id)
                self._halt.setdefault(batch_id, asyncio.Event()).set()
        stored = await asyncio.to_thread(self.store.statuses, running)
        for batch_id, status in stored.items():
            job = self._live.get(batch_id)
            if status == "cancelling" and job is not None and batch_id not in self._cancelled:
                log.info("batch %s: cancelled through another process", batch_id)
                await self.cancel(job)
        await self._adopt()

    async def _adopt(self) -> None:
        for job in await asyncio.to_thread(self.store.unfinished):
            batch_id = job.batch.id
            if self._stopping:
                return
            if batch_id in self._tasks or batch_id in self._creating:
                continue
            fresh = await asyncio.to_thread(self._claim_unfinished, batch_id)
            if fresh is None or batch_id in self._tasks:
                continue
            if self._stopping:
                await asyncio.to_thread(self.claims.release, CLAIM_KIND, batch_id)
                return
            if fresh.batch.status == "cancelling":
                self._cancelled.add(batch_id)
            log.info("resuming batch %s (%s)", batch_id, fresh.batch.status)
            self.spawn(fresh)

    def _claim_unfinished(self, batch_id: str) -> BatchJob | None:
        """The batch as stored once claimed, or None: claimed by a live process, or ended meanwhile."""
        return self.claims.adopt(CLAIM_KIND, batch_id, self.store.read, lambda job: job.batch.status in FINAL_STATUSES)

    def spawn(self, job: BatchJob) -> None:
        """Run ``job`` here (nothing when it runs here already); the caller holds its claim."""
        if job.batch.id in self._tasks:
            return
        self._live[job.batch.id] = job
        halt = self._halt.setdefault(job.batch.id, asyncio.Event())
        if self._stopping or job.batch.id in self._cancelled:
            halt.set()
        task = asyncio.create_task(self._run(job), name=f"lmdeck-batch-{job.batch.id}")
        self._tasks[job.batch.id] = task

        def forget(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job.batch.id, None)
            self._live.pop(job.batch.id, None)
            self._halt.pop(job.batch.id, None)
            self._finished.pop(job.batch.id, None)
            self._lost.discard(job.batch.id)

        task.add_done_callback(forget)

    # -- one batch ---------------------------------------------------------------------------------

    async def _save(self, job: BatchJob) -> None:
        await asyncio.to_thread(self.store.save, job)

    async def _run(self, job: BatchJob) -> None:
        try:
            await self._drive(job)
        except Exception:
            log.exception("batch %s failed", job.batch.id)
            job.batch.status = "failed"
            job.batch.failed_at = int(time.time())
            job.batch.errors = BatchErrors(data=[BatchErrorData(code="internal_error", message="the batch failed")])
            await self._save(job)
        finally:
            # Ended, stopped or lost: released (a claim another process took is not ours to release).
            try:
                await asyncio.to_thread(self.claims.release, CLAIM_KIND, job.batch.id)
            except Exception:
                log.exception(
                    "batch %s: releasing its claim failed; it expires in %gs", job.batch.id, self.claims.ttl_s
                )

    async def _drive(self, job: BatchJob) -> None:
        batch = job.batch
        try:
            rows = await asyncio.to_thread(self._input, job)
        except BatchFailed as exc:
            batch.status = "failed"
            batch.failed_at = int(time.time())
            batch.errors = BatchErrors(data=exc.errors)
            await self._save(job)
            return
        folder = self.files.root / "batches" / batch.id
        outputs = await asyncio.to_thread(BatchOutputs, folder)
        try:
            done = await asyncio.to_thread(self._done, job, outputs, rows)
            batch.request_counts.total = len(rows)
            batch.request_counts.completed = sum(1 for ok in done.values() if ok)
            batch.request_counts.failed = sum(1 for ok in done.values() if not ok)
            if batch.status == "validating":
                batch.status = "in_progress"
                batch.in_progress_at = int(time.time())
            await self._save(job)
            todo = [(number, row) for number, row in enumerate(rows, start=1) if number not in done]
            if batch.status == "in_progress" and batch.id not in self._cancelled:
                await self._run_rows(job, todo, outputs)
            if self._stopping or batch.id in self._lost:
                return  # resumed by the next process to claim it
            finished = self._finished.get(batch.id, set())
            await self._finish(job, outputs, [(n, r) for n, r in todo if n not in finished])
        finally:
            await asyncio.to_thread(outputs.close)

    def _input(self, job: BatchJob) -> list[BatchInputLine]:
        batch = job.batch
        found = self.files.read(batch.input_file_id)
        if found is None:
            raise BatchFailed([BatchErrorData(code="file_not_found", message="the input file was deleted")])
        _, data = found
        try:
            rows = check_batch_file(data, max_rows=self.files.max_rows)
        except APIError as exc:
            raise BatchFailed([BatchErrorData(code="invalid_batch_line", message=exc.message)]) from None
        wrong = [
            BatchErrorData(
                code="invalid_url",
                message=f"line {n}: url {row.url!r} is not the batch's endpoint {batch.endpoint!r}",
                param="url",
                line=n,
            )
            for n, row in enumerate(rows, start=1)
            if row.url != batch.endpoint
        ]
        if wrong:
            raise BatchFailed(wrong[:100])
        return rows

    def _done(self, job: BatchJob, outputs: BatchOutputs, rows: list[BatchInputLine]) -> dict[int, bool]:
        done = self.store.done(job.batch.id)
        on_disk = outputs.recovered()
        # A line on disk whose done-set row a crash lost is not run twice: it is added now.
        missed = [(n, True) for n, row in enumerate(rows, start=1) if row.custom_id in on_disk and n not in done]
        if missed:
            self.store.mark_done(job.batch.id, missed)
            done.update(missed)
        return done

    async def _run_rows(self, job: BatchJob, todo: list[tuple[int, BatchInputLine]], outputs: BatchOutputs) -> None:
        batch = job.batch
        finished = self._finished.setdefault(batch.id, set())
        pending = iter(todo)
        deadline = float(batch.expires_at or time.time())
        write = asyncio.Lock()
        last_save = time.monotonic()

        def go_on() -> bool:
            return (
                not self._stopping
                and batch.id not in self._cancelled
                and batch.id not in self._lost
                and time.time() < deadline
            )

        async def keep(number: int, result: RowResult) -> None:
            nonlocal last_save
            async with write:
                await asyncio.to_thread(self._keep, job, outputs, number, result)
                finished.add(number)
                if result.ok:
                    batch.request_counts.completed += 1
                else:
                    batch.request_counts.failed += 1
                if time.monotonic() - last_save > 1.0:
                    last_save = time.monotonic()
                    await self._save(job)

        halt = self._halt.setdefault(batch.id, asyncio.Event())

        async def worker() -> None:
            while go_on():
                item = next(pending, None)
                if item is None:
                    return
                number, row = item
                ready = await self._admitted(
                    self.rows.admit(job, custom_id=row.custom_id, url=row.url, body=row.body, deadline=deadline), halt
                )
                if ready is None:
                    return  # stopped while the row waited for its rate limit: it made no call and left no trace
                result = ready if isinstance(ready, RowResult) else await self.rows.answer(job, row.custom_id, ready)
                await keep(number, result)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    @staticmethod
    async def _admitted(
        admission: Coroutine[Any, Any, RequestContext | RowResult], halt: asyncio.Event
    ) -> RequestContext | RowResult | None:
        """``admission``'s outcome, or None when ``halt`` is set first (the admission is cancelled)."""
        task = asyncio.ensure_future(admission)
        halted = asyncio.ensure_future(halt.wait())
        try:
            await asyncio.wait({task, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    def _keep(self, job: BatchJob, outputs: BatchOutputs, number: int, result: RowResult) -> None:
        outputs.append([result])
        self.store.mark_done(job.batch.id, [(number, result.ok)])

    async def _finish(self, job: BatchJob, outputs: BatchOutputs, left: list[tuple[int, BatchInputLine]]) -> None:
        """Make the output and error files file objects, then the final status: a reader who sees the
        final status sees the files too."""
        batch = job.batch
        if batch.id in self._cancelled or batch.status == "cancelling":
            final = "cancelled"
        elif left:
            final = "expired"
            expired = [expired_line(row.custom_id) for _, row in left]
            await asyncio.to_thread(outputs.append, expired)
            batch.request_counts.failed += len(expired)
        else:
            final = "completed"
            batch.status = "finalizing"
            batch.finalizing_at = int(time.time())
            await self._save(job)
        await asyncio.to_thread(self._register, job, outputs)
        now = int(time.time())
        if final == "cancelled":
            batch.status, batch.cancelled_at = "cancelled", now
        elif final == "expired":
            batch.status, batch.expired_at = "expired", now
        else:
            batch.status, batch.completed_at = "completed", now
        self._cancelled.discard(batch.id)
        await self._save(job)

    def _register(self, job: BatchJob, outputs: BatchOutputs) -> None:
        batch = job.batch
        outputs.close()
        for path, field in ((outputs.output, "output_file_id"), (outputs.errors, "error_file_id")):
            if path.exists() and path.stat().st_size and getattr(batch, field) is None:
                name = f"{batch.id}_{'output' if field == 'output_file_id' else 'error'}.jsonl"
                meta = self.files.register(job.team_id, job.key_id, "batch_output", name, path)
                setattr(batch, field, meta.id)
