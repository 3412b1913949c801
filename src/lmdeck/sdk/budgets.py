"""``client.budgets``: spending limits per key and team, and their live state.

budget = client.budgets.set("team", "team_1a2b", "month", limit_usd=250, soft_limit=0.8)
print(budget.spent, budget.remaining)      # US dollars; budget.remaining_micros is exact
client.budgets.alerts()                     # soft limits crossed, budgets used up
"""

from __future__ import annotations

from urllib.parse import quote

from lmdeck.protocol.access import AlertOut, BudgetOut, Period, Scope
from lmdeck.sdk.namespace import Namespace


class Budgets(Namespace):
    """The budgets API (``/api/budgets``)."""

    name = "budgets"

    def set(
        self,
        scope: Scope,
        subject_id: str,
        period: Period,
        *,
        limit_usd: float | None = None,
        limit_micros: int | None = None,
        soft_limit: float | None = None,
    ) -> BudgetOut:
        """Create the budget of a key or team for a period, or change its limits.

        Give the limit in US dollars (``limit_usd``, kept to the nearest micro-dollar) or exactly
        in micro-dollars (``limit_micros``).
        """
        body: dict[str, object] = {"scope": scope, "subject_id": subject_id, "period": period}
        if limit_usd is not None:
            body["limit_usd"] = limit_usd
        if limit_micros is not None:
            body["limit_micros"] = limit_micros
        if soft_limit is not None:
            body["soft_limit"] = soft_limit
        return BudgetOut.model_validate(self.client.put("/api/budgets", json=body))

    def get(self, budget_id: str) -> BudgetOut:
        return BudgetOut.model_validate(self.client.get(f"/api/budgets/{quote(budget_id, safe='')}"))

    def delete(self, budget_id: str) -> None:
        self.client.delete(f"/api/budgets/{quote(budget_id, safe='')}")

    def alerts(self) -> list[AlertOut]:
        return [AlertOut.model_validate(a) for a in self.client.get("/api/budgets/alerts")["data"]]

    # Last in the class: a method named `list` would hide the builtin in the annotations after it.
    def list(self) -> list[BudgetOut]:
        return [BudgetOut.model_validate(b) for b in self.client.get("/api/budgets")["data"]]


NAMESPACE = Budgets
