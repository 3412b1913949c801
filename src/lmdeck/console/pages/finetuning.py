"""Fine-tuning: jobs (status, progress, last loss, the registered model) and flywheel runs; a job's
stages, loss curve, gate and data card; a flywheel run's steps. Read-only.

Reads go through :class:`~lmdeck.finetune.jobs.service.FineTuningService` and
:class:`~lmdeck.finetune.flywheel.FlywheelService` with the signed-in principal, as
``/v1/fine_tuning/jobs`` and ``/api/flywheel/runs`` do (another team's job or run is the 404 page).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.services import fine_tuning_of, flywheel_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.loss_chart import HEIGHT, WIDTH, loss_chart
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.finetune.flywheel import FlywheelRun
from lmdeck.protocol import APIError
from lmdeck.protocol.fine_tuning import JobStage

router = APIRouter(prefix="/console/finetuning", include_in_schema=False)

#: Jobs and flywheel runs listed on the index; events read for a job's loss curve.
RECENT = 100
MAX_EVENTS = 10_000
STAGES: tuple[JobStage, ...] = ("prepare", "train", "evaluate", "register", "done")


def _refused(request: Request, user: ConsoleUser, exc: APIError) -> Response:
    return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)


def current_step(run: FlywheelRun) -> str | None:
    """The step a run is at: the one running, else the last that started."""
    started = [s for s in run.steps if s.status != "pending"]
    running = [s for s in started if s.status == "running"] or started
    return running[-1].name if running else None


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        jobs = (await fine_tuning_of(request).listing(user.principal, limit=RECENT, after=None)).data
    except APIError as exc:
        return _refused(request, user, exc)
    runs = await flywheel_of(request).list(user.principal, limit=RECENT)
    rows = [{"run": r, "current": current_step(r)} for r in runs]
    return render(request, user, "finetuning/index.html", {"jobs": jobs, "runs": rows})


@router.get("/jobs/{job_id}")
async def job(request: Request, job_id: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        service = fine_tuning_of(request)
        found = await service.get(job_id, user.principal)
        events = await service.events(job_id, user.principal, limit=MAX_EVENTS, after=None)
    except APIError as exc:
        return _refused(request, user, exc)
    chart = loss_chart(e.data for e in events.data if e.type == "metrics")
    stage = STAGES.index(found.progress.stage)
    stages = [
        {"name": s, "state": "done" if i < stage else "current" if i == stage else "pending"}
        for i, s in enumerate(STAGES)
    ]
    context: dict[str, Any] = {"job": found, "stages": stages, "chart": chart, "width": WIDTH, "height": HEIGHT}
    return render(request, user, "finetuning/job.html", context)


@router.get("/flywheel/{run_id}")
async def flywheel_run(request: Request, run_id: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        run = await flywheel_of(request).get(run_id, user.principal)
    except APIError as exc:
        return _refused(request, user, exc)
    return render(request, user, "finetuning/flywheel.html", {"run": run, "current": current_step(run)})


PAGE = ConsolePage(title="Fine-tuning", path="/console/finetuning", min_role="viewer", router=router, order=45)
