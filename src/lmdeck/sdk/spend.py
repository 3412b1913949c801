"""``client.spend``: recorded cost, grouped.

report = client.spend.report(by="team", period="month")
for row in report.data:
    print(row.group, row.cost, row.cost_micros)   # US dollars, and micro-dollars exactly
"""

from __future__ import annotations

from lmdeck.protocol.access import GroupBy, Period, SpendReport
from lmdeck.sdk.namespace import Namespace


class Spend(Namespace):
    """The spend API (``/api/spend``)."""

    name = "spend"

    def report(
        self,
        *,
        by: GroupBy = "team",
        period: Period = "month",
        since: float | None = None,
        until: float | None = None,
    ) -> SpendReport:
        params = {"by": by, "period": period, "since": since, "until": until}
        return SpendReport.model_validate(self.client.get("/api/spend", params=params))


NAMESPACE = Spend
