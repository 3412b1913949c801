"""``spend_world``: the module's ``console_gateway`` with two teams, their keys and priced traffic
(:func:`lmdeck.testing.spend_world.build_spend_world`), built once per module."""

from __future__ import annotations

import pytest

from lmdeck.testing.servers import GatewayProcess
from lmdeck.testing.spend_world import SpendWorld, build_spend_world


@pytest.fixture(scope="module")
def spend_world(console_gateway: GatewayProcess) -> SpendWorld:
    return build_spend_world(console_gateway)
