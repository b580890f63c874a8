"""AnalyticsService: converts, runs the summary (where `run` runs it), converts back."""

from __future__ import annotations

from microfin.loanbilling.v1 import analytics_service_pb2 as api
from microfin.loanbilling.v1 import analytics_service_pb2_grpc

from loanbilling.api import convert
from loanbilling.api.auth import Role
from loanbilling.api.edge import OPEN, Edge, unary
from loanbilling.api.runners import Run
from loanbilling.domain.portfolio import StatusFigures
from loanbilling.services.analytics import AnalyticsService, PortfolioSummary


class AnalyticsServicer(analytics_service_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, analytics: AnalyticsService, run: Run, edge: Edge = OPEN) -> None:
        self.analytics = analytics
        self._run = run
        self.edge = edge

    @unary(Role.READER)
    async def GetPortfolioSummary(self, request: api.GetPortfolioSummaryRequest, context):
        # Parsed on the loop so that a bad date is refused before any database work.
        summary = await self._run(
            self.analytics.portfolio_summary,
            as_of=convert.date_from_pb(request, "as_of"),
            currency_code=request.currency_code,
        )
        return summary_to_pb(summary)


def _status_to_pb(figures: StatusFigures) -> api.StatusSummary:
    return api.StatusSummary(
        loan_count=figures.loan_count,
        principal_amount=figures.principal_amount,
        outstanding_amount=figures.outstanding_amount,
    )


def summary_to_pb(summary: PortfolioSummary) -> api.GetPortfolioSummaryResponse:
    f = summary.figures
    return api.GetPortfolioSummaryResponse(
        as_of=convert.date_to_pb(summary.as_of),
        currency_code=summary.currency_code,
        loan_count=f.loan_count,
        active=_status_to_pb(f.active),
        delinquent=_status_to_pb(f.delinquent),
        paid=_status_to_pb(f.paid),
        principal_disbursed=f.principal_disbursed,
        total_repayable=f.total_repayable,
        collected_amount=f.collected_amount,
        outstanding_amount=f.outstanding_amount,
        overdue_amount=f.overdue_amount,
        due_amount=f.due_amount,
        portfolio_at_risk=[
            api.RiskBucket(
                min_days_past_due=b.min_days_past_due,
                max_days_past_due=b.max_days_past_due or 0,  # 0: no upper bound
                loan_count=b.loan_count,
                outstanding_amount=b.outstanding_amount,
            )
            for b in f.portfolio_at_risk
        ],
        delinquency_rate_bps=f.delinquency_rate_bps,
        collection_rate_bps=f.collection_rate_bps,
        waived_interest_amount=f.waived_interest_amount,
        written_off=_status_to_pb(f.written_off),
        written_off_principal_amount=f.written_off_principal_amount,
        written_off_interest_amount=f.written_off_interest_amount,
        recovered_amount=f.recovered_amount,
    )
