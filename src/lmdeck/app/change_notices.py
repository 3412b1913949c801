"""Which service announces and follows which change notice (:mod:`lmdeck.changes`), in one place.

    changes = change_notices(shared.link)        # through Redis pub/sub, or in-process (polling only)
    follow_changes(changes, registry=registry, policy=policy, flags=flags, delivery=delivery,
                   shadow=shadow, evaluation=evaluation)
    services.append(changes)                     # subscribes at start, stops with the gateway

Each service publishes its topic after a local commit and reloads at once (its poll's tick)
when another process publishes it:

============  =====================================================  ==================================
topic         published after                                        reloads
============  =====================================================  ==================================
registry      any registry write (aliases, labels, versions, apply)  the registry snapshot
policy        key, team, user and budget changes                     keys, teams, budgets
flags         flag writes (put, enable, disable, delete)             the flag snapshot
delivery      release transitions                                    serving releases, shadow mirrors
experiments   experiment writes                                      running experiments
online_evals  online rule changes                                    online rules
============  =====================================================  ==================================
"""

from __future__ import annotations

from lmdeck.changes import ChangeNotices
from lmdeck.db.redis_changes import change_notices
from lmdeck.delivery.flags.runtime import FlagRuntime
from lmdeck.delivery.runtime import DeliveryRuntime
from lmdeck.delivery.shadow.runtime import ShadowRuntime
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.policy.services import PolicyServices
from lmdeck.registry.runtime import RegistryRuntime

__all__ = ["change_notices", "follow_changes"]


def follow_changes(
    changes: ChangeNotices,
    *,
    registry: RegistryRuntime,
    policy: PolicyServices,
    flags: FlagRuntime,
    delivery: DeliveryRuntime,
    shadow: ShadowRuntime,
    evaluation: EvaluationRuntime,
) -> None:
    """Hand ``changes`` to every service that announces or follows a topic (see the module docstring)."""
    registry.live.follow_changes(changes)
    policy.follow_changes(changes)
    flags.live.follow_changes(changes)
    delivery.releases.follow_changes(changes)
    shadow.follow_changes(changes)
    evaluation.experiments.follow_changes(changes)
    if evaluation.rules is not None:
        evaluation.rules.follow_changes(changes)
