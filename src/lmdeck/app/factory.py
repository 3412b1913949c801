"""The app factory.

app = create_app(load_settings())
uvicorn.run(app, host="127.0.0.1", port=4000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.middleware.body_limit import BodyLimitMiddleware
from lmdeck.app.middleware.inference_routes import InferenceRoutes, inference_routes
from lmdeck.app.middleware.internal_error import InternalErrorMiddleware
from lmdeck.app.middleware.refused import RefusedRequestMiddleware
from lmdeck.app.middleware.request_id import RequestIdMiddleware
from lmdeck.app.middleware.secret_refs import SecretRefsMiddleware
from lmdeck.app.middleware.server_span import ServerSpanMiddleware
from lmdeck.app.routes import (
    alerts,
    audit,
    batches_api,
    budgets,
    files_api,
    fine_tuning,
    health,
    keys,
    messages_api,
    metrics,
    moderations_api,
    openai_api,
    responses_api,
    secrets,
    spend,
    teams,
    traces,
)
from lmdeck.app.routes import annotation as annotation_routes
from lmdeck.app.routes import drift as drift_routes
from lmdeck.app.routes import evaluation as evaluation_routes
from lmdeck.app.routes import experiments as experiment_routes
from lmdeck.app.routes import feedback as feedback_routes
from lmdeck.app.routes import flags as flag_routes
from lmdeck.app.routes import flywheel as flywheel_routes
from lmdeck.app.routes import guardrails as guardrail_routes
from lmdeck.app.routes import otlp as otlp_routes
from lmdeck.app.routes import registry as registry_routes
from lmdeck.app.routes import releases as release_routes
from lmdeck.app.routes import retention as retention_routes
from lmdeck.app.routes import sessions as session_routes
from lmdeck.app.routes import shadow as shadow_routes
from lmdeck.app.routes import trace_trees as trace_tree_routes
from lmdeck.app.unmatched import UnmatchedPath
from lmdeck.gateway.errors import install_error_handlers
from lmdeck.settings import Settings
from lmdeck.version import __version__


def create_app(settings: Settings | None = None, *, gateway: Gateway | None = None) -> FastAPI:
    settings = settings or (gateway.settings if gateway else Settings())
    gw = gateway or build_gateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(
        title="lmdeck",
        version=__version__,
        description="OpenAI-compatible gateway and LLMOps API.",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    install_error_handlers(app)
    app.include_router(openai_api.router)
    app.include_router(responses_api.router)
    app.include_router(files_api.router)
    app.include_router(batches_api.router)
    app.include_router(fine_tuning.router)
    app.include_router(moderations_api.router)
    app.include_router(messages_api.router)
    app.include_router(registry_routes.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(retention_routes.router)
    app.include_router(traces.router)
    app.include_router(session_routes.router)
    app.include_router(trace_tree_routes.router)
    app.include_router(otlp_routes.router)
    app.include_router(guardrail_routes.router)
    app.include_router(release_routes.router)
    app.include_router(flag_routes.router)
    app.include_router(shadow_routes.router)
    app.include_router(drift_routes.router)
    app.include_router(flywheel_routes.router)
    for evaluation_part in (evaluation_routes, feedback_routes, experiment_routes, annotation_routes):
        app.include_router(evaluation_part.router)
    for access_routes in (keys, teams, budgets, spend, audit, secrets):
        app.include_router(access_routes.router)
    app.include_router(alerts.router)
    # What no route matches is answered in its API family's error shape, redirects are relative.
    app.router.redirect_slashes = False
    app.router.default = UnmatchedPath(app.router)
    # Innermost first: the inference routes are served where the router would serve them (inside
    # every lmdeck middleware); secret references are looked for in bodies the size limit has already
    # bounded; an unexpected error anywhere below is answered with the request id stamped outside.
    app.add_middleware(InferenceRoutes, routes=inference_routes(app))
    app.add_middleware(SecretRefsMiddleware, authenticator=gw.authenticator)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # An upload may reach the file limit; a little over it is let through so that the route
        # answers with the limit it broke (batches.max_file_bytes), not the body limit.
        path_limits={"/v1/files": settings.batches.max_file_bytes + 64 * 1024},
    )
    app.add_middleware(InternalErrorMiddleware)
    if gw.refusals is not None:
        app.add_middleware(RefusedRequestMiddleware, recorder=gw.refusals)
    app.add_middleware(
        ServerSpanMiddleware,
        exporter=gw.otel,
        refused_per_second=settings.tracing.refused_spans_per_second,
        unspanned_paths=settings.tracing.unspanned_paths,
    )
    app.add_middleware(RequestIdMiddleware)
    return app
