"""Stand-ins for the job service's stages, written for tests.

``FakeRunner`` is a fake job runner: it trains nothing. It writes to ``progress.jsonl`` what a
training worker writes (``started``, a ``step`` per step with a falling loss, a ``checkpoint``
every ``save_steps``, ``succeeded``), saves an adapter that changes nothing (a PEFT LoRA adapter
at its initial, zero update) and, started again on a directory with checkpoints, goes on from
the newest as the real worker does. ``hold`` makes it wait before its last step, so a test can
cancel or restart around a running job.

``simple_preparer`` renders rows through the demo chat template and holds out every fifth.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from lmdeck.finetune.jobs.stages import Prepared, RunnerState
from lmdeck.local.catalog import ModelCatalog
from lmdeck.local.chat_template import ChatTemplate
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard, PrepOptions, ProgressEvent

_ADAPTER_LOCK = threading.Lock()


def demo_dir() -> Path:
    return ModelCatalog().find("demo").path


def identity_adapter(cache: Path) -> Path:
    """A LoRA adapter of the demo model that changes nothing (its B matrices are zero), made once."""
    with _ADAPTER_LOCK:
        if not (cache / "adapter_config.json").exists():
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(demo_dir(), local_files_only=True)
            peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
            peft_model.save_pretrained(cache)
    return cache


class FakeRunner:
    """A fake job runner for tests (see the module docstring)."""

    name = "fake"

    def __init__(self, adapter_cache: Path, *, steps: int = 6, save_steps: int = 2, fail: bool = False) -> None:
        self.adapter_cache = adapter_cache
        self.steps = steps
        self.save_steps = save_steps
        self.fail = fail
        self.hold = threading.Event()
        self.hold.set()
        self.started: list[Path] = []
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}

    def start(self, job_dir: Path) -> str:
        handle = f"fake-{len(self._threads) + 1}"
        self._cancel[handle] = threading.Event()
        thread = threading.Thread(target=self._work, args=(job_dir, handle), daemon=True)
        self._threads[handle] = thread
        self.started.append(job_dir)
        thread.start()
        return handle

    def state(self, handle: str) -> RunnerState:
        thread = self._threads.get(handle)
        if thread is None:
            return "lost"
        return "running" if thread.is_alive() else "exited"

    def cancel(self, handle: str) -> None:
        if handle in self._cancel:
            self._cancel[handle].set()
        self.hold.set()

    def _work(self, job_dir: Path, handle: str) -> None:
        spec = json.loads((job_dir / "job.json").read_text())
        assert Path(spec["train_file"]).exists()
        done = [int(p.name.split("-")[1]) for p in (job_dir / "checkpoints").glob("checkpoint-*")]
        first = max(done, default=0)
        with (job_dir / "progress.jsonl").open("a") as out:

            def write(kind: str, **fields: object) -> None:
                event = ProgressEvent.model_validate(
                    {"kind": kind, "at": time.time(), "total_steps": self.steps, **fields}
                )
                out.write(event.model_dump_json() + "\n")
                out.flush()

            write("started", step=first, message=f"fake worker: no training (from step {first})")
            for step in range(first + 1, self.steps + 1):
                if step == self.steps:
                    self.hold.wait()
                if self._cancel[handle].is_set():
                    write("cancelled", step=step - 1)
                    return
                write("step", step=step, loss=2.0 / step, tokens_per_s=100.0, eta_s=float(self.steps - step))
                if step % self.save_steps == 0:
                    path = job_dir / "checkpoints" / f"checkpoint-{step}"
                    path.mkdir(parents=True, exist_ok=True)
                    write("checkpoint", step=step, path=str(path))
            if self.fail:
                write("failed", step=self.steps, message="fake worker: told to fail")
                return
            try:
                shutil.copytree(identity_adapter(self.adapter_cache), job_dir / "adapter", dirs_exist_ok=True)
            except Exception as exc:
                write("failed", step=self.steps, message=f"fake worker: no adapter: {exc!r}")
                raise
            write("succeeded", step=self.steps, trained_tokens=1234, path=str(job_dir / "adapter"))


def simple_preparer(
    rows: Sequence[DatasetRow],
    options: PrepOptions,
    *,
    base_model: str,
    dataset: str,
    directory: Path,
    keep_card: bool = True,
) -> Prepared:
    """Every fifth row held out; no dedup, no scrubbing (the real preparation is tested on its own)."""
    directory.mkdir(parents=True, exist_ok=True)
    template = ChatTemplate()
    train, validation = [], []
    for i, row in enumerate(rows):
        (validation if i % 5 == 4 else train).append(row)
    train_file, validation_file = directory / "train.jsonl", directory / "validation.jsonl"
    for path, part in ((train_file, train), (validation_file, validation)):
        with path.open("w") as out:
            for row in part:
                prompt, completion = template.training_text(str(row.input), str(row.expected))
                out.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    card = DataCard(
        dataset=dataset,
        base_model=base_model,
        chat_template="demo",
        options=options,
        rows_in=len(rows),
        train=len(train),
        validation=len(validation),
        created_at=time.time(),
    )
    held_out = [DatasetRow(input=r.input, expected=r.expected, metadata=r.metadata) for r in validation]
    return Prepared(train_file, validation_file, card, demo_dir(), held_out)
