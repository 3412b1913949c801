"""The gateway's pipeline: built once from the steps each package declares, in the order of their phases."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.cache import steps as cache_steps
from lmdeck.gateway.routing.eligibility import RouteEligibility
from lmdeck.gateway.steps import core_steps
from lmdeck.gateway.steps.compress import compression_steps
from lmdeck.pipeline.order import order_steps
from lmdeck.settings import Settings

#: The order every request has run through; a change to it is a change of behaviour.
DEFAULT_ORDER = [
    "stream_usage",
    "authenticate",
    "record",
    "shadow",
    "flags",
    "experiment",
    "release",
    "prompt",
    "flag-routes",
    "experiment-pin",
    "bundle",
    "compress",
    "concurrency",
    "ratelimit",
    "budget",
    "cache-exact",
    "cache-semantic",
    "cost",
    "applied-routes",
]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = build_gateway(Settings(data_dir=tmp_path), announce_admin_key=False)
    try:
        yield gw
    finally:
        await gw.stop()


async def test_the_default_settings_give_todays_order(gateway: Gateway) -> None:
    assert gateway.pipeline.names == DEFAULT_ORDER
    assert [phase for phase, _ in gateway.pipeline.layout] == [
        "edge",
        "identify",
        "trace",
        "trace",
        "resolve",
        "resolve",
        "resolve",
        "resolve",
        "resolve",
        "resolve",
        "resolve",
        "resolve",
        "admit",
        "admit",
        "admit",
        "cache",
        "cache",
        "meter",
        "route",
    ]


async def test_the_order_does_not_depend_on_the_order_packages_are_collected_in(gateway: Gateway) -> None:
    """Each package's declarations, collected in every order, sort to the same pipeline."""
    packages = [
        core_steps(gateway.sink, gateway.observers),
        gateway.policy.steps(gateway.router, gateway.authenticator),
        gateway.registry.steps(),
        gateway.evaluation.steps(RouteEligibility(gateway.router.get)),
        gateway.delivery.steps() if gateway.delivery is not None else [],
        gateway.flags.steps(lambda name: None) if gateway.flags is not None else [],
        compression_steps(lambda name: None),
        cache_steps(gateway.cache, lambda name: None) if gateway.cache is not None else [],
        gateway.shadow.steps() if gateway.shadow is not None else [],
    ]
    # Every package at every position, before and after every other (rotations of both directions), and a
    # fixed sample of the other orders: all 9! of them take a minute for what these show.
    orders = [packages[i:] + packages[:i] for i in range(len(packages))]
    orders += [list(reversed(order)) for order in orders]
    orders += [random.Random(seed).sample(packages, len(packages)) for seed in range(200)]
    for permutation in orders:
        declared = [d for package in permutation for d in package]
        assert [d.name for d in order_steps(declared)] == DEFAULT_ORDER


async def test_the_gateway_logs_the_order_once_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lmdeck.app.assembly"):
        gw = build_gateway(Settings(data_dir=tmp_path), announce_admin_key=False)
    try:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pipeline: ")]
        assert lines == ["pipeline: " + " → ".join(DEFAULT_ORDER)]
        assert next(r for r in caplog.records if r.getMessage() == lines[0]).levelno == logging.INFO
    finally:
        await gw.stop()
