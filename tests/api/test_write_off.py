"""Rules v2, "Write-off and recoveries", over gRPC on both databases: the amounts
written off, the status from the write-off date on, recoveries of any amount up
to the outstanding and their reversal, what stays refused, the sweep's silence,
idempotency and events."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import events_pb2, notification_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import resources_pb2 as pb

from tests.api.test_events import read_events, sweep
from tests.api.test_payoff import all_payments, quote
from tests.api.test_reversal import outstanding, refused, reverse
from tests.conftest import START
from tests.support.api import (
    create_canonical_loan,
    create_customer,
    details_of,
    new_key,
    pay,
    pb_date,
    py_date,
    row_counts,
)

WEEK = dt.timedelta(days=7)
DAY = dt.timedelta(days=1)
WRITE_OFF_DAY = dt.date(2026, 3, 2)  # 8 weeks due (the 8th today), 3 paid


@pytest.fixture
def notifications(channel):
    return notification_service_pb2_grpc.NotificationServiceStub(channel)


def due(week: int) -> dt.date:
    return START + week * WEEK


def write_off_request(
    loan_id: int, on: dt.date | None = None, *, reason="borrower absconded", key: str | None = None
) -> api.WriteOffLoanRequest:
    request = api.WriteOffLoanRequest(
        loan_id=loan_id, reason=reason, idempotency_key=new_key("write-off") if key is None else key
    )
    if on is not None:
        request.write_off_date.CopyFrom(pb_date(on))
    return request


def write_off(stub, loan_id: int, on: dt.date | None = None, **kwargs):
    return stub.WriteOffLoan(write_off_request(loan_id, on, **kwargs))


def written_off_loan(stub, clock) -> int:
    """A canonical loan with weeks 1-3 paid on their due dates, written off on 03-02."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    for week in (1, 2, 3):
        clock.current = due(week)
        pay(stub, loan_id, 110_000)
    clock.current = WRITE_OFF_DAY
    write_off(stub, loan_id)
    return loan_id


def test_write_off_records_what_is_still_owed(stub, clock, notifications):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    for week in (1, 2, 3):
        clock.current = due(week)
        pay(stub, loan_id, 110_000)
    clock.current = WRITE_OFF_DAY
    done = write_off(stub, loan_id, reason="borrower absconded")
    assert not done.replayed
    # A = 330,000: principal 5,000,000 - 300,000, interest 500,000 - 30,000.
    assert (done.written_off_principal_amount, done.written_off_interest_amount) == (
        4_700_000,
        470_000,
    )
    loan = done.loan
    assert loan.status == pb.LOAN_STATUS_WRITTEN_OFF
    assert py_date(loan.write_off_date) == WRITE_OFF_DAY
    assert loan.write_off_reason == "borrower absconded"
    assert (loan.written_off_principal_amount, loan.written_off_interest_amount) == (
        4_700_000,
        470_000,
    )
    assert loan.outstanding_amount == 5_170_000

    # Reads keep reporting what is owed and what was missed; the status is
    # WRITTEN_OFF from the write-off date on, and what it was before that.
    now = outstanding(stub, loan_id)
    assert (now.outstanding_amount, now.status) == (5_170_000, pb.LOAN_STATUS_WRITTEN_OFF)
    late = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert (late.missed_installments, late.delinquent) == (4, True)
    before = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id, as_of=pb_date(WRITE_OFF_DAY - DAY)))
    assert before.loan.status == pb.LOAN_STATUS_DELINQUENT
    assert py_date(before.loan.write_off_date) == WRITE_OFF_DAY  # a write-off is never undone
    listed = stub.ListLoans(api.ListLoansRequest(status=pb.LOAN_STATUS_WRITTEN_OFF)).loans
    assert [item.id for item in listed] == [loan_id]

    (event,) = read_events(
        notifications, 1, loan_id=loan_id, kinds=[events_pb2.EVENT_KIND_LOAN_WRITTEN_OFF]
    )
    assert (event.amount, event.outstanding_amount) == (5_170_000, 5_170_000)
    assert py_date(event.business_date) == WRITE_OFF_DAY


def test_the_sweep_writes_nothing_for_a_written_off_loan(stub, clock):
    loan_id = written_off_loan(stub, clock)
    clock.current = WRITE_OFF_DAY + 30 * DAY
    report = sweep(stub, clock.current)
    assert (report.loans_checked, report.events_written, report.newly_delinquent) == (0, 0, 0)
    assert outstanding(stub, loan_id).status == pb.LOAN_STATUS_WRITTEN_OFF


def test_recoveries_of_any_amount_up_to_the_outstanding(stub, engine, clock):
    loan_id = written_off_loan(stub, clock)
    clock.current = WRITE_OFF_DAY + 10 * DAY
    early = refused(
        stub.MakePayment,
        api.MakePaymentRequest(
            loan_id=loan_id,
            amount=10,
            idempotency_key=new_key(),
            payment_date=pb_date(WRITE_OFF_DAY - DAY),
        ),
    )
    assert early.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "before the loan's write-off on 2026-03-02" in early.details()
    small = pay(stub, loan_id, 1)
    assert small.payment.kind == pb.PAYMENT_KIND_RECOVERY
    assert small.status == pb.LOAN_STATUS_WRITTEN_OFF
    assert small.outstanding_amount == 5_169_999
    assert list(small.payment.settled_week_numbers) == []
    assert small.payment.principal_amount + small.payment.interest_amount == 1

    odd = pay(stub, loan_id, 123_457)  # closes week 4 and 13,458 of week 5
    assert list(odd.payment.settled_week_numbers) == [4]
    assert odd.outstanding_amount == 5_170_000 - 123_458

    before = row_counts(engine)
    owed = odd.outstanding_amount
    for amount in (0, -5, owed + 1):
        error = refused(
            stub.MakePayment,
            api.MakePaymentRequest(loan_id=loan_id, amount=amount, idempotency_key=new_key()),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, amount
        assert f"1 to {owed:,}" in error.details()
        assert details_of(error)["ErrorInfo"].reason == "RECOVERY_AMOUNT_OUT_OF_RANGE"
    assert row_counts(engine) == before

    rest = pay(stub, loan_id, owed)
    assert (rest.outstanding_amount, rest.status) == (0, pb.LOAN_STATUS_WRITTEN_OFF)
    nothing = refused(
        stub.MakePayment,
        api.MakePaymentRequest(loan_id=loan_id, amount=1, idempotency_key=new_key()),
    )
    assert nothing.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(nothing)["ErrorInfo"].reason == "NOTHING_OWED"

    # A recovery can be reversed; the loan stays written off.
    undone = reverse(stub, odd.payment.id, reason="recovery cheque bounced")
    assert (undone.outstanding_amount, undone.status) == (123_457, pb.LOAN_STATUS_WRITTEN_OFF)
    payments = all_payments(stub, loan_id)
    live = [p for p in payments if not p.reversed]
    assert sum(p.amount for p in live) == 5_500_000 - 123_457
    assert sum(p.principal_amount for p in live) + sum(p.interest_amount for p in live) == sum(
        p.amount for p in live
    )


def test_what_a_write_off_refuses(stub, engine, clock):
    loan_id = written_off_loan(stub, clock)
    first = all_payments(stub, loan_id)[0]
    before = row_counts(engine)

    again = refused(stub.WriteOffLoan, write_off_request(loan_id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(again)["ErrorInfo"].reason == "LOAN_ALREADY_WRITTEN_OFF"
    pre = refused(
        stub.ReversePayment,
        api.ReversePaymentRequest(
            payment_id=first.id, reason="late bounce", idempotency_key=new_key()
        ),
    )
    assert pre.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(pre)["ErrorInfo"].reason == "LOAN_WRITTEN_OFF"
    for call, request in (
        (stub.GetPayoffQuote, api.GetPayoffQuoteRequest(loan_id=loan_id)),
        (
            stub.PayOffLoan,
            api.PayOffLoanRequest(loan_id=loan_id, amount=5_170_000, idempotency_key=new_key()),
        ),
    ):
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "written off" in error.details()
    assert row_counts(engine) == before
    # Before the write-off the loan still had a payoff quote.
    assert quote(stub, loan_id, WRITE_OFF_DAY - DAY).payoff_amount == 5_170_000

    paid = create_canonical_loan(
        stub, create_customer(stub), START, weeks=1, principal_amount=1_000
    )
    clock.current = WRITE_OFF_DAY
    pay(stub, paid.id, 1_100)
    fresh = create_canonical_loan(stub, create_customer(stub), START)
    pay(stub, fresh.id, 110_000, on=due(1))
    counts = row_counts(engine)
    cases = [
        (write_off_request(paid.id), grpc.StatusCode.FAILED_PRECONDITION, "fully paid"),
        (write_off_request(999_999), grpc.StatusCode.NOT_FOUND, "loan 999999"),
        (write_off_request(fresh.id, reason=" "), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (write_off_request(fresh.id, key=""), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
        (
            write_off_request(fresh.id, WRITE_OFF_DAY + DAY),
            grpc.StatusCode.INVALID_ARGUMENT,
            "future",
        ),
        (
            write_off_request(fresh.id, due(1) - DAY),
            grpc.StatusCode.INVALID_ARGUMENT,
            "latest payment",
        ),
        (write_off_request(fresh.id, START - DAY), grpc.StatusCode.INVALID_ARGUMENT, "start"),
    ]
    for request, code, says in cases:
        error = refused(stub.WriteOffLoan, request)
        assert error.code() == code, (request, error.details())
        assert says in error.details(), error.details()
    assert row_counts(engine) == counts


def test_idempotency(stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    other = create_canonical_loan(stub, create_customer(stub), START).id
    clock.current = WRITE_OFF_DAY
    first = write_off(stub, loan_id, key="give-up")
    counts = row_counts(engine)
    again = write_off(stub, loan_id, key="give-up")
    assert again.replayed
    assert (again.written_off_principal_amount, again.written_off_interest_amount) == (
        first.written_off_principal_amount,
        first.written_off_interest_amount,
    )
    assert again.loan == first.loan
    for request in (
        write_off_request(other, key="give-up"),
        write_off_request(loan_id, key="give-up", reason="another reason"),
    ):
        error = refused(stub.WriteOffLoan, request)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "borrower" not in error.details() and "loan" not in error.details()
    assert row_counts(engine) == counts
