"""The in-process generation engine: continuous batching on one thread, off the event loop.

Requests wait in a bounded queue. Between two decode steps the engine thread admits as
many as there are free rows (prefilling them together), then runs one decode step for
every running sequence; a sequence that finishes, hits a stop sequence or is cancelled
leaves the batch at once and its row goes to the next waiting request. Tokens are handed
back to each caller's event loop with ``call_soon_threadsafe``, one call per loop per step::

    engine = LocalEngine(lm, max_batch_size=32, max_queue=256)
    handle = engine.submit(lm.encode(prompt), SamplingParams(max_tokens=32, temperature=0))
    try:
        while (event := await handle.next_event()).finish_reason is None:
            print(event.text, end="")
    finally:
        handle.cancel()    # frees the row if the caller stops listening early
    engine.close()
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from lmdeck.local.adapter_dir import check_adapter_dir
from lmdeck.local.adapters import AdapterSlots
from lmdeck.local.detokenize import TextStream
from lmdeck.local.errors import AdapterError, EngineClosed, PromptTooLong, QueueFull
from lmdeck.local.fair_queue import FairQueue
from lmdeck.local.kv_cache import BatchKV
from lmdeck.local.logprobs import TokenLogprob, position_logprobs, prompt_logprobs
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import RowSampler, SamplingParams, next_tokens

__all__ = [
    "AdapterError",
    "EngineClosed",
    "GenerationHandle",
    "LocalEngine",
    "PromptTooLong",
    "QueueFull",
    "TokenEvent",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEvent:
    """New text for one request; the last event carries ``finish_reason`` (``stop`` or ``length``).

    ``logprobs`` holds an entry for each token whose text this event completes (when the request asked
    for them); a request that asked for ``prompt_logprobs`` gets them in an event of its own, first.
    """

    text: str
    completion_tokens: int
    finish_reason: str | None = None
    error: BaseException | None = None
    step: int = 0  # the engine iteration that produced it: orders events across requests
    logprobs: tuple[TokenLogprob, ...] = ()
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None


class GenerationHandle:
    """The caller's side of one request: events arrive on the caller's loop, in order."""

    def __init__(self, engine: LocalEngine, prompt_tokens: int, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.prompt_tokens = prompt_tokens
        self.loop = loop
        self.cancelled = False
        self.finished = False
        self.completion_tokens = 0
        self.logprobs: list[TokenLogprob] = []  # every generated token's entry received so far
        self.prompt_logprobs: list[TokenLogprob | None] | None = None
        self._events: asyncio.Queue[TokenEvent] = asyncio.Queue()

    def _deliver(self, event: TokenEvent) -> None:
        self._events.put_nowait(event)

    async def next_event(self) -> TokenEvent:
        """The next event; raises the engine's error if generation failed."""
        event = await self._events.get()
        if event.error is not None:
            self.finished = True
            raise event.error
        self.completion_tokens = event.completion_tokens
        self.logprobs.extend(event.logprobs)
        if event.prompt_logprobs is not None:
            self.prompt_logprobs = list(event.prompt_logprobs)
        if event.finish_reason is not None:
            self.finished = True
        return event

    async def text(self) -> tuple[str, str]:
        """Wait for the whole generation: ``(text, finish_reason)``."""
        parts: list[str] = []
        try:
            while True:
                event = await self.next_event()
                parts.append(event.text)
                if event.finish_reason is not None:
                    return "".join(parts), event.finish_reason
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop generating for this request (a no-op once it has finished)."""
        if not self.finished and not self.cancelled:
            self.cancelled = True
            self.engine._wake()


@dataclass
class _Sequence:
    handle: GenerationHandle
    prompt: list[int]
    sampler: RowSampler
    stream: TextStream
    max_tokens: int
    group: str = ""  # whose share of the batch it uses: a team (or a key without one)
    member: str = ""  # and, inside the group, a key
    adapter: str | None = None  # the resolved directory of its LoRA adapter, if it asked for one
    position: int = 0
    last_token: int = 0
    generated: int = 0
    admitted: int = 0  # the engine iteration that gave it a row: the newest rows are the first to yield
    resume: list[int] | None = None  # prompt + generated so far, when it gave its row up and waits to go on
    # Entries of generated tokens whose text is not yet released (held back as a possible stop sequence).
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class EngineStats:
    """Counters for benchmarks, metrics and tests."""

    running: int = 0
    waiting: int = 0
    steps: int = 0
    step_rows: int = 0
    prefills: int = 0
    finished: int = 0
    cancelled: int = 0
    rejected: int = 0
    preempted: int = 0  # rows given back to make room for a group under its fair share
    evicted: int = 0  # waiting requests refused to make room in a full queue for a group with fewer waiting

    @property
    def mean_batch(self) -> float:
        return self.step_rows / self.steps if self.steps else 0.0


@dataclass
class _Outbox:
    events: dict[asyncio.AbstractEventLoop, list[tuple[GenerationHandle, TokenEvent]]] = field(default_factory=dict)

    def add(self, handle: GenerationHandle, event: TokenEvent) -> None:
        self.events.setdefault(handle.loop, []).append((handle, event))

    def flush(self) -> None:
        for loop, items in self.events.items():
            try:
                loop.call_soon_threadsafe(_deliver_all, items)
            except RuntimeError:  # the caller's loop is gone: nobody is listening any more
                for handle, _ in items:
                    handle.cancelled = True
        self.events = {}


def _deliver_all(items: list[tuple[GenerationHandle, TokenEvent]]) -> None:
    for handle, event in items:
        handle._deliver(event)


class LocalEngine:
    """Continuous-batching generation for one :class:`LocalCausalLM`. Thread-safe ``submit``."""

    def __init__(
        self,
        lm: LocalCausalLM,
        *,
        max_batch_size: int = 32,
        max_queue: int = 256,
        max_prefill_rows: int = 16,
        max_adapters: int = 8,
    ) -> None:
        self.lm = lm
        self.adapters = AdapterSlots(lm, max_adapters)
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_prefill_rows = max_prefill_rows
        self.stats = EngineStats()
        self._iteration = 0
        self._cond = threading.Condition()
        self._waiting: FairQueue[_Sequence] = FairQueue()
        self._running: list[_Sequence] = []
        self._outbox = _Outbox()
        self._closed = False
        self._paused = False
        self._thread = threading.Thread(target=self._run, name=f"lmdeck-engine-{lm.name}", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    def submit(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        *,
        group: str = "",
        member: str = "",
        adapter: str | Path | None = None,
        checked: bool = False,
    ) -> GenerationHandle:
        """Queue a request for ``member`` (a key) of ``group`` (its team); its events go to the running event loop.

        ``adapter`` is the directory of a PEFT LoRA adapter to generate with (loaded by the engine thread on
        first use). Raises PromptTooLong, AdapterError (no adapter directory there), EngineClosed, or QueueFull
        when the queue is full and ``group`` already has the most requests waiting (otherwise the newest
        waiting request of the group with the most makes room). An adapter that does not fit the model ends
        the request with an AdapterError event. ``checked``: ``adapter`` is already resolved and passed
        :func:`check_adapter_dir` (in a thread), so this call, made on the event loop, reads no file.
        """
        adapter_path = None
        if adapter is not None and checked:
            adapter_path = str(adapter)
        elif adapter is not None:
            adapter_path = str(Path(adapter).resolve())
            if adapter_path not in self.adapters:
                check_adapter_dir(adapter_path)
        room = self.lm.context_length - len(prompt)
        if not prompt:
            raise PromptTooLong("the prompt is empty: send at least one token of text")
        if room < 1:
            raise PromptTooLong(
                f"the prompt is {len(prompt)} tokens but model {self.lm.name!r} has a context of "
                f"{self.lm.context_length}: shorten the prompt"
            )
        handle = GenerationHandle(self, len(prompt), asyncio.get_running_loop())
        seq = _Sequence(
            handle=handle,
            prompt=list(prompt),
            sampler=RowSampler(params),
            stream=TextStream(self.lm.tokenizer, params.stop),
            max_tokens=min(params.max_tokens, room),
            group=group,
            member=member,
            adapter=adapter_path,
        )
        with self._cond:
            if self._closed:
                raise EngineClosed(f"the engine for {self.lm.name!r} is stopped")
            free = self.max_batch_size - len(self._running)
            if len(self._waiting) >= self.max_queue + (0 if self._paused else max(0, free)):
                self._make_room(seq)
            self._waiting.push(group, member, seq)
            self.stats.waiting = len(self._waiting)
            self._cond.notify()
        return handle

    def _full(self) -> QueueFull:
        return QueueFull(
            f"model {self.lm.name!r} is busy: {len(self._running)} running and {len(self._waiting)} waiting "
            f"(local.max_queue={self.max_queue}); retry shortly"
        )

    def _make_room(self, newcomer: _Sequence) -> None:
        """Refuse ``newcomer`` (QueueFull), or the newest waiting request of a group with more waiting."""
        sizes = self._waiting.sizes()
        mine = sizes.get(newcomer.group, 0)
        biggest = max(sizes, key=lambda g: sizes[g], default=None)
        victim = None
        if biggest is not None and sizes[biggest] >= mine + 2:
            victim = self._waiting.remove_last(biggest)
            if victim is not None and victim.generated:
                # It already streamed text (it gave up its row for a while): it keeps its place.
                self._waiting.push(victim.group, victim.member, victim, front=True)
                victim = None
        self.stats.rejected += 1
        if victim is None:
            raise self._full()
        self.stats.evicted += 1
        error = TokenEvent("", 0, error=self._full())
        victim.handle.loop.call_soon_threadsafe(victim.handle._deliver, error)

    def pause(self) -> None:
        """Stop admitting and decoding (requests keep queueing) until :meth:`resume`."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine thread; requests still running or waiting end with :class:`EngineClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the engine thread ---------------------------------------------------------------------

    def _run(self) -> None:
        # Every tensor of the batch is made and changed in inference mode: buffers that grow inside a
        # forward pass are inference tensors, which may only be updated in place in that mode.
        with torch.inference_mode():
            self._loop()

    def _loop(self) -> None:
        kv = self.lm.new_batch(self.max_batch_size)
        while True:
            with self._cond:
                while not self._closed and (self._paused or not (self._waiting or self._running)):
                    self._cond.wait()
                if self._closed:
                    break
            self._iteration += 1
            admitted: list[_Sequence] = []
            try:
                self._drop_cancelled(kv)
                with self._cond:
                    self._preempt(kv)
                    admitted = self._admit()
                admitted = self._load_adapters(admitted)
                for start in range(0, len(admitted), self.max_prefill_rows):
                    self._prefill(kv, admitted[start : start + self.max_prefill_rows])
                if self._running:
                    self._decode(kv)
            except Exception as exc:
                log.exception("local engine step failed for %s", self.lm.name)
                for seq in [*self._running, *admitted]:
                    if not seq.handle.finished:
                        self._outbox.add(seq.handle, TokenEvent("", seq.generated, error=exc))
                self._running = []
                kv = self.lm.new_batch(self.max_batch_size)
            # Counters first: whoever receives these events sees the state they describe.
            self.stats.running = len(self._running)
            self._outbox.flush()
        self._shutdown()

    def _share(self, running: Counter[str]) -> int:
        """Rows each active group (running or waiting) is due: the batch divided evenly among them."""
        active = set(running) | set(self._waiting.sizes())
        return max(1, self.max_batch_size // max(1, len(active)))

    def _preempt(self, kv: BatchKV) -> None:
        """Take rows back from groups over their share for waiting groups under theirs (no free row left).

        A row given back keeps everything generated so far; the request waits at the head of its key's
        line and later goes on where it stopped (its prompt and generated tokens are prefilled again).
        """
        if not self._waiting or len(self._running) < self.max_batch_size:
            return
        running = Counter(seq.group for seq in self._running)
        share = self._share(running)
        rows: list[int] = []
        for group in self._waiting.sizes():
            if running[group] >= share:
                continue
            over = max(running, key=lambda g: running[g])
            if running[over] <= share:
                break
            row = max(
                (r for r, seq in enumerate(self._running) if seq.group == over and r not in rows),
                key=lambda r: self._running[r].admitted,
            )
            rows.append(row)
            running[over] -= 1
            running[group] += 1
        victims = [self._running[r] for r in rows]
        self._remove(kv, rows)
        for seq in victims:
            seq.resume = seq.prompt + seq.stream.ids
            self._waiting.push(seq.group, seq.member, seq, front=True)
        self.stats.preempted += len(victims)

    def _admit(self) -> list[_Sequence]:
        # A caller that gave up while waiting must not hold a place in the queue.
        self.stats.cancelled += self._waiting.discard(lambda seq: seq.handle.cancelled or seq.handle.finished)
        running = Counter(seq.group for seq in self._running)
        share = self._share(running)
        admitted: list[_Sequence] = []
        while self._waiting and len(self._running) + len(admitted) < self.max_batch_size:
            # Groups under their share take their turns first; the others have what is left.
            seq = self._waiting.pop(prefer=lambda group: running[group] < share)
            if seq is None:
                break
            seq.admitted = self._iteration
            running[seq.group] += 1
            admitted.append(seq)
        self.stats.waiting = len(self._waiting)
        return admitted

    def _load_adapters(self, admitted: list[_Sequence]) -> list[_Sequence]:
        """Load the adapters ``admitted`` needs; those that find every slot busy wait again at the front.

        An adapter that cannot be loaded ends its request with the :class:`AdapterError`.
        """
        if all(seq.adapter is None for seq in admitted):
            return admitted
        busy = {seq.adapter for seq in self._running if seq.adapter is not None}
        ready: list[_Sequence] = []
        back: list[_Sequence] = []
        for seq in admitted:
            if seq.adapter is not None:
                try:
                    loaded = self.adapters.acquire(seq.adapter, busy)
                except AdapterError as exc:
                    log.warning("%s", exc)
                    self.stats.rejected += 1
                    self._outbox.add(seq.handle, TokenEvent("", seq.generated, error=exc))
                    continue
                if not loaded:
                    back.append(seq)
                    continue
                busy.add(seq.adapter)
            ready.append(seq)
        if back:
            with self._cond:
                for seq in reversed(back):
                    self._waiting.push(seq.group, seq.member, seq, front=True)
                self.stats.waiting = len(self._waiting)
        return ready

    def _shutdown(self) -> None:
        with self._cond:
            left = [*self._running, *self._waiting]
            self._running, self._waiting = [], FairQueue()
        for seq in left:
            self._outbox.add(seq.handle, TokenEvent("", seq.generated, error=EngineClosed("the local engine stopped")))
        self._outbox.flush()

    def _remove(self, kv: BatchKV, rows: list[int]) -> None:
        for row in sorted(rows, reverse=True):
            kv.leave(row)
            last = self._running.pop()
            if row < len(self._running):
                self._running[row] = last

    def _drop_cancelled(self, kv: BatchKV) -> None:
        gone = [row for row, seq in enumerate(self._running) if seq.handle.cancelled]
        self.stats.cancelled += len(gone)
        self._remove(kv, gone)

    def _prefill(self, kv: BatchKV, seqs: list[_Sequence]) -> None:
        # A request that gave its row up goes on from all it has: its prompt and what it generated.
        prompts = [s.resume if s.resume is not None else s.prompt for s in seqs]
        scoring = [s.sampler.params.prompt_logprobs if s.resume is None else None for s in seqs]
        full = any(k is not None for k in scoring)
        adapters = self.adapters.slots([s.adapter for s in seqs])
        logits, cache = self.lm.prefill(prompts, full_logits=full, adapters=adapters)
        last = logits[:, -1, :] if full else logits
        for i, (seq, top) in enumerate(zip(seqs, scoring, strict=True)):
            if top is not None:
                entries = prompt_logprobs(logits[i], seq.prompt, logits.shape[1] - len(seq.prompt), top)
                event = TokenEvent("", 0, step=self._iteration, prompt_logprobs=tuple(entries))
                self._outbox.add(seq.handle, event)
        chosen = next_tokens(last, [s.sampler for s in seqs])
        scored = position_logprobs(last, chosen, [s.sampler.params.logprobs for s in seqs])
        kv.join(cache, [len(p) for p in prompts])
        self.stats.prefills += 1
        first_row = len(self._running)
        self._running += seqs
        done: list[int] = []
        for offset, (seq, prompt, token, entry) in enumerate(zip(seqs, prompts, chosen, scored, strict=True)):
            seq.position = len(prompt)
            seq.resume = None
            finished = self._finish(seq, "", "length") if seq.max_tokens == 0 else self._accept(seq, token, entry)
            if finished:
                done.append(first_row + offset)
        self._remove(kv, done)

    def _decode(self, kv: BatchKV) -> None:
        running = self._running
        adapters = self.adapters.slots([s.adapter for s in running])
        logits = self.lm.decode(kv, [s.last_token for s in running], [s.position for s in running], adapters)
        self.stats.steps += 1
        self.stats.step_rows += len(running)
        chosen = next_tokens(logits, [s.sampler for s in running])
        scored = position_logprobs(logits, chosen, [s.sampler.params.logprobs for s in running])
        done: list[int] = []
        for row, (seq, token, entry) in enumerate(zip(running, chosen, scored, strict=True)):
            seq.position += 1
            if self._accept(seq, token, entry):
                done.append(row)
        self._remove(kv, done)

    def _accept(self, seq: _Sequence, token: int, entry: TokenLogprob | None) -> bool:
        """Take one generated token (and its log-probability entry, if asked for); True when the sequence is finished."""
        if token in self.lm.eos_ids and not seq.sampler.params.ignore_eos:
            return self._finish(seq, seq.stream.flush(), "stop")
        seq.generated += 1
        seq.last_token = token
        start = seq.stream.decoded
        text, stopped = seq.stream.push(token)
        if entry is not None:
            seq.pending_logprobs.append(replace(entry, offset=start))
        if stopped:
            return self._finish(seq, text, "stop", cut=True)
        if seq.generated >= seq.max_tokens:
            return self._finish(seq, text + seq.stream.flush(), "length")
        released = self._released(seq)
        if text or released:
            self._outbox.add(seq.handle, TokenEvent(text, seq.generated, step=self._iteration, logprobs=released))
        return False

    @staticmethod
    def _released(seq: _Sequence, *, finished: bool = False, cut: bool = False) -> tuple[TokenLogprob, ...]:
        """The entries of the tokens whose text is now released; at the end, of every token shown.

        A stop sequence ``cut`` the text: the tokens that only made up the stop sequence are not shown.
        """
        pending = seq.pending_logprobs
        if not pending:
            return ()
        shown = len(seq.stream.text)
        if finished:
            out = [e for e in pending if not cut or e.offset < shown]
            pending.clear()
            return tuple(out)
        ends = [e.offset for e in pending[1:]] + [seq.stream.decoded]
        count = 0
        while count < len(pending) and ends[count] <= shown:
            count += 1
        out = pending[:count]
        del pending[:count]
        return tuple(out)

    def _finish(self, seq: _Sequence, text: str, reason: str, *, cut: bool = False) -> bool:
        self.stats.finished += 1
        released = self._released(seq, finished=True, cut=cut)
        event = TokenEvent(text, seq.generated, reason, step=self._iteration, logprobs=released)
        self._outbox.add(seq.handle, event)
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is running or waiting (for tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._running and not self._waiting:
                return True
            time.sleep(0.005)
        return False
