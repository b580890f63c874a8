"""AnalyticsService.GetPortfolioSummary over a real channel, on both databases.

The server here carries only the AnalyticsService, so that these tests do not
depend on how the main server is composed; the write-off test runs on the main
server, which writes the loan off (WriteOffLoan) and its recovery.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.type import date_pb2
from microfin.loanbilling.v1 import analytics_service_pb2 as api
from microfin.loanbilling.v1 import analytics_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as loan_api
from microfin.loanbilling.v1 import resources_pb2 as pb

from loanbilling.api.analytics_servicer import AnalyticsServicer
from loanbilling.api.malformed import add_tolerant
from loanbilling.api.runners import on_threads
from loanbilling.domain.loan import PayoffInterest
from loanbilling.services.analytics import AnalyticsService
from loanbilling.storage.unit_of_work import sql_storage
from tests.conftest import START
from tests.support.api import (
    create_canonical_loan,
    create_customer,
    details_of,
    lend_canonical,
    new_key,
    pay,
    pb_date,
    py_date,
)

AS_OF = START + dt.timedelta(days=28)


@pytest.fixture
def analytics(engine, clock):
    """A stub of a grpc.aio server with just the AnalyticsService, on its own loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-analytics", daemon=True)
    thread.start()
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="db")

    async def start():
        server = grpc.aio.server()
        add_tolerant(
            analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server,
            AnalyticsServicer(AnalyticsService(sql_storage(engine), clock), on_threads(executor)),
            server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield analytics_service_pb2_grpc.AnalyticsServiceStub(channel)
    asyncio.run_coroutine_threadsafe(server.stop(0.5), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()
    executor.shutdown(wait=True)


@pytest.fixture
def two_loans(billing, clock):
    """Two canonical loans from START: one paid through week 3 on day 21, one never paid."""
    clock.current = AS_OF
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    for paid in (True, False):
        loan = lend_canonical(billing, customer, START)
        if paid:
            billing.make_payment(
                loan_id=loan.id,
                amount=330_000,
                payment_date=START + dt.timedelta(days=21),
                idempotency_key="three-weeks",
            )


def test_summary_over_the_wire(analytics, two_loans):
    # Day 28: weeks 1-3 fell due before it, week 4 falls due on it.
    # Paid loan: owes 5,170,000, nothing overdue. Unpaid loan: 3 missed (delinquent),
    # 330,000 overdue, 28 - 7 = 21 days past due. Due on or before day 28: 4 weeks each.
    response = analytics.GetPortfolioSummary(
        api.GetPortfolioSummaryRequest(as_of=pb_date(AS_OF), currency_code="IDR")
    )
    assert response == api.GetPortfolioSummaryResponse(
        as_of=pb_date(AS_OF),
        currency_code="IDR",
        loan_count=2,
        active=api.StatusSummary(
            loan_count=1, principal_amount=5_000_000, outstanding_amount=5_170_000
        ),
        delinquent=api.StatusSummary(
            loan_count=1, principal_amount=5_000_000, outstanding_amount=5_500_000
        ),
        paid=api.StatusSummary(),
        written_off=api.StatusSummary(),
        principal_disbursed=10_000_000,
        total_repayable=11_000_000,
        collected_amount=330_000,
        outstanding_amount=10_670_000,
        overdue_amount=330_000,
        due_amount=880_000,
        portfolio_at_risk=[
            api.RiskBucket(min_days_past_due=1, max_days_past_due=6),
            api.RiskBucket(min_days_past_due=7, max_days_past_due=13),
            api.RiskBucket(
                min_days_past_due=14,
                max_days_past_due=29,
                loan_count=1,
                outstanding_amount=5_500_000,
            ),
            api.RiskBucket(min_days_past_due=30, max_days_past_due=0),  # 0: no upper bound
        ],
        delinquency_rate_bps=5_000,  # 1 of 2 unpaid loans
        collection_rate_bps=3_750,  # 330,000 of 880,000
    )


def test_a_waived_payoff_is_not_collected(analytics, billing, clock):
    # WAIVE_UNDUE, weeks 1-2 paid on day 14, paid off on day 28: j = 3 + 1 = 4,
    # J(cum(4)) = 40,000 of the 500,000 interest owed, 460,000 waived; the payoff is
    # 5,500,000 - 220,000 - 460,000 = 4,820,000 of cash.
    clock.current = AS_OF
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="").id
    loan = lend_canonical(billing, customer, START, payoff_interest=PayoffInterest.WAIVE_UNDUE)
    billing.make_payment(
        loan_id=loan.id,
        amount=220_000,
        payment_date=START + dt.timedelta(days=14),
        idempotency_key="two-weeks",
    )
    quote = billing.get_payoff_quote(loan_id=loan.id, as_of=AS_OF)
    assert (quote.payoff_amount, quote.waived_interest_amount) == (4_820_000, 460_000)
    billing.pay_off_loan(
        loan_id=loan.id, amount=quote.payoff_amount, payment_date=AS_OF, idempotency_key="off"
    )
    response = analytics.GetPortfolioSummary(
        api.GetPortfolioSummaryRequest(as_of=pb_date(AS_OF), currency_code="IDR")
    )
    assert response.collected_amount == 220_000 + 4_820_000  # the cash paid
    assert response.waived_interest_amount == 460_000
    assert response.outstanding_amount == 0
    assert (
        response.total_repayable
        == 5_500_000
        == (
            response.collected_amount
            + response.outstanding_amount
            + response.waived_interest_amount
        )
    )
    # The day before the payoff nothing is waived yet.
    before = analytics.GetPortfolioSummary(
        api.GetPortfolioSummaryRequest(
            as_of=pb_date(AS_OF - dt.timedelta(days=1)), currency_code="IDR"
        )
    )
    assert (before.collected_amount, before.waived_interest_amount) == (220_000, 0)
    assert before.outstanding_amount == 5_280_000


def test_a_written_off_loan_counts_apart_with_its_recovery(channel, stub, clock):
    # Two canonical loans from START. One: weeks 1-3 paid on their due dates (A =
    # 330,000, J(A) = 30,000), written off on day 35 (4,700,000 principal and
    # 470,000 interest given up), 200,000 recovered on day 49. The other never paid.
    summaries = analytics_service_pb2_grpc.AnalyticsServiceStub(channel)
    customer = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer, START).id
    create_canonical_loan(stub, customer, START)
    for week in (1, 2, 3):
        clock.current = START + dt.timedelta(days=7 * week)
        pay(stub, loan_id, 110_000)
    write_off_day = START + dt.timedelta(days=35)
    clock.current = write_off_day + dt.timedelta(days=3)
    done = stub.WriteOffLoan(
        loan_api.WriteOffLoanRequest(
            loan_id=loan_id,
            reason="borrower absconded",
            idempotency_key=new_key("write-off"),
            write_off_date=pb_date(write_off_day),
        )
    )
    assert (done.written_off_principal_amount, done.written_off_interest_amount) == (
        4_700_000,
        470_000,
    )
    clock.current = START + dt.timedelta(days=49)
    recovery = pay(stub, loan_id, 200_000)
    assert recovery.payment.kind == pb.PAYMENT_KIND_RECOVERY

    def summary(on: dt.date) -> api.GetPortfolioSummaryResponse:
        return summaries.GetPortfolioSummary(
            api.GetPortfolioSummaryRequest(as_of=pb_date(on), currency_code="IDR")
        )

    # Day 56: the written-off loan has c(530,000) = 4, 7 due before, 56 - 35 = 21
    # days past due, in no bucket; the other 7 missed, 49 days: DELINQUENT, 30+.
    clock.current = START + dt.timedelta(days=56)
    response = summary(clock.current)
    assert response.written_off == api.StatusSummary(
        loan_count=1, principal_amount=5_000_000, outstanding_amount=4_970_000
    )
    assert (response.written_off_principal_amount, response.written_off_interest_amount) == (
        4_700_000,
        470_000,
    )
    assert response.recovered_amount == 5_170_000 - 4_970_000 == 200_000
    assert response.collected_amount == 330_000 + 200_000  # the recovery is cash collected
    assert response.active == api.StatusSummary()
    assert response.delinquent == api.StatusSummary(
        loan_count=1, principal_amount=5_000_000, outstanding_amount=5_500_000
    )
    assert response.delinquency_rate_bps == 10_000  # 1 of 1: written off is no status of it
    assert [(b.loan_count, b.outstanding_amount) for b in response.portfolio_at_risk] == [
        (0, 0),
        (0, 0),
        (0, 0),  # 14-29: not the written-off loan
        (1, 5_500_000),
    ]
    assert response.loan_count == 2 and response.outstanding_amount == 4_970_000 + 5_500_000
    assert response.total_repayable == response.collected_amount + response.outstanding_amount

    # Day 48, before the recovery: written off, nothing recovered yet.
    before_recovery = summary(START + dt.timedelta(days=48))
    assert (before_recovery.written_off.loan_count, before_recovery.recovered_amount) == (1, 0)
    assert before_recovery.collected_amount == 330_000
    assert before_recovery.written_off_principal_amount == 4_700_000

    # Day 34, the day before the write-off: ACTIVE (1 missed), 34 - 28 = 6 days past due.
    before = summary(write_off_day - dt.timedelta(days=1))
    assert before.written_off == api.StatusSummary()
    assert (
        before.written_off_principal_amount,
        before.written_off_interest_amount,
        before.recovered_amount,
    ) == (0, 0, 0)
    assert before.active == api.StatusSummary(
        loan_count=1, principal_amount=5_000_000, outstanding_amount=5_170_000
    )
    one_to_six = before.portfolio_at_risk[0]
    assert (one_to_six.loan_count, one_to_six.outstanding_amount) == (1, 5_170_000)

    # The recovery reversed: it counts at no date.
    stub.ReversePayment(
        loan_api.ReversePaymentRequest(
            payment_id=recovery.payment.id,
            reason="cheque bounced",
            idempotency_key=new_key("reversal"),
        )
    )
    undone = summary(clock.current)
    assert (undone.recovered_amount, undone.collected_amount) == (0, 330_000)
    assert undone.written_off.outstanding_amount == 5_170_000
    assert undone.written_off_principal_amount == 4_700_000  # fixed at the write-off


def test_defaults_are_the_business_date_and_idr(analytics, two_loans, clock):
    clock.current = AS_OF + dt.timedelta(days=3)
    response = analytics.GetPortfolioSummary(api.GetPortfolioSummaryRequest())
    assert py_date(response.as_of) == clock.current
    assert response.currency_code == "IDR"
    assert response == analytics.GetPortfolioSummary(
        api.GetPortfolioSummaryRequest(as_of=pb_date(clock.current), currency_code="IDR")
    )
    assert response.loan_count == 2


@pytest.mark.parametrize("code", ["idr", "US", "EURO", "ID1", " IDR", "ÀBC"])
def test_bad_currency_is_refused(analytics, code):
    with pytest.raises(grpc.RpcError) as caught:
        analytics.GetPortfolioSummary(api.GetPortfolioSummaryRequest(currency_code=code))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = details_of(caught.value)
    assert [v.field for v in details["BadRequest"].field_violations] == ["currency_code"]
    assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "as_of",
    [date_pb2.Date(year=2026, month=2, day=30), date_pb2.Date(), date_pb2.Date(year=2026)],
)
def test_invalid_date_is_refused(analytics, as_of):
    request = api.GetPortfolioSummaryRequest()
    request.as_of.CopyFrom(as_of)  # set, even when every field is 0
    with pytest.raises(grpc.RpcError) as caught:
        analytics.GetPortfolioSummary(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details_of(caught.value)["BadRequest"].field_violations] == ["as_of"]
