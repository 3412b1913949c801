"""Two gateways in process on one store and data directory, as two workers of ``lmdeck serve --workers``:
a job is driven by the one that claims it, and adopted by the other when that one dies.

Both train with :class:`FakeRunner` (a fake: see ``fakes.py``). "Dies" is what a killed process
leaves: its driver stops without releasing its claim, nobody renews the claim, and its worker is
gone; the survivor's claims clock is moved past the claim's expiry, so nothing waits for it.
"""

from __future__ import annotations

import time
from typing import Any

from lmdeck.finetune.jobs.service import CLAIM_KIND
from lmdeck.settings import Settings

from .conftest import StartDeck, count_rows
from .fakes import FakeRunner
from .test_jobs_api import JOBS, final, until


async def test_a_job_a_live_gateway_drives_is_left_alone_and_adopted_once_that_gateway_dies(
    settings: Settings, start_deck: StartDeck, adapter_cache: Any
) -> None:
    first, second = FakeRunner(adapter_cache), FakeRunner(adapter_cache)
    first.hold.clear()  # the fake worker waits before its last step
    async with start_deck(settings, first) as a:
        training = await a.dataset("counts", count_rows(50))
        created = (await a.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
        job_id = created["id"]
        await until(a, job_id, lambda j: j["progress"]["step"] >= 5)
        async with start_deck(settings, second, a.keys) as b:
            assert a.service.claims is not None and b.service.claims is not None
            await b.service._tend()  # b started, then renewed and looked for work: the job is a's
            assert second.started == [] and job_id not in b.service._tasks
            assert b.service.claims.holder(CLAIM_KIND, job_id) == a.service.claims.owner

            # a dies: no more renewals, no release, its worker gone with it.
            assert a.service._tending is not None
            await a.service._tending.stop()
            a.service.claims = None
            for task in list(a.service._tasks.values()):
                task.cancel()
            for handle in list(first._threads):
                first.cancel(handle)
                first._threads[handle].join()

            b.service.claims.clock = lambda: time.time() + 3600  # past the claim's expiry
            await b.service._tend()
            job = await until(b, job_id, final)
            assert job["status"] == "gated", job
            assert [p.name for p in second.started] == [job_id]
            checkpoints = (await b.call("GET", f"{JOBS}/{job_id}/checkpoints")).json()["data"]
            assert [c["step_number"] for c in checkpoints] == [6, 4, 2]
