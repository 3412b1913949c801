"""What a rule does when it fires: one action per module behind :class:`~lmdeck.monitoring.actions.base.Action`.

Built-ins: ``open_breaker``, ``shift_weight``, ``rollback_release`` and ``disable_flag``
(see :data:`BUILTIN_ACTIONS`). Every run is audited as ``alerts.action.<type>``.
"""

from lmdeck.monitoring.actions.base import Action, ActionContext, ActionError, run_actions
from lmdeck.monitoring.actions.breaker import OpenBreaker
from lmdeck.monitoring.actions.delivery import DisableFlag, RollbackRelease
from lmdeck.monitoring.actions.weights import ShiftWeight

#: The built-in actions by type name.
BUILTIN_ACTIONS: dict[str, Action] = {
    "open_breaker": OpenBreaker(),
    "shift_weight": ShiftWeight(),
    "rollback_release": RollbackRelease(),
    "disable_flag": DisableFlag(),
}

__all__ = ["BUILTIN_ACTIONS", "Action", "ActionContext", "ActionError", "run_actions"]
