"""Rules v2, "Reversal", over gRPC on both databases: the worked example exactly,
reads at past dates, re-allocation of the later payments, a payoff reversed, a
last installment that absorbed a remainder, status changes and their events,
refusals that record nothing, and idempotency."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import events_pb2, notification_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import resources_pb2 as pb

from tests.api.test_events import read_events, sweep
from tests.api.test_payoff import all_payments, pay_off, quote
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


def due(week: int) -> dt.date:
    return START + week * WEEK


@pytest.fixture
def notifications(channel):
    return notification_service_pb2_grpc.NotificationServiceStub(channel)


def reverse(
    stub,
    payment_id: int,
    on: dt.date | None = None,
    *,
    reason="transfer bounced",
    key: str | None = None,
) -> api.ReversePaymentResponse:
    request = api.ReversePaymentRequest(
        payment_id=payment_id, reason=reason, idempotency_key=key or new_key("reversal")
    )
    if on is not None:
        request.reversal_date.CopyFrom(pb_date(on))
    return stub.ReversePayment(request)


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def outstanding(stub, loan_id: int, on: dt.date | None = None) -> api.GetOutstandingResponse:
    request = api.GetOutstandingRequest(loan_id=loan_id)
    if on is not None:
        request.as_of.CopyFrom(pb_date(on))
    return stub.GetOutstanding(request)


def delinquency(stub, loan_id: int, on: dt.date) -> api.IsDelinquentResponse:
    return stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id, as_of=pb_date(on)))


def worked_example(stub, clock):
    """Canonical loan from 2026-01-05: p1, p2, p3 of 110,000 on 01-12, 01-19, 01-26."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    ids = []
    for week in (1, 2, 3):
        clock.current = due(week)
        ids.append(pay(stub, loan_id, 110_000).payment.id)
    return loan_id, ids


def test_worked_example(stub, clock):
    loan_id, (p1, p2, p3) = worked_example(stub, clock)
    assert outstanding(stub, loan_id, dt.date(2026, 1, 20)).outstanding_amount == 5_280_000

    done = reverse(stub, p2)
    assert not done.replayed
    assert done.payment.id == p2
    assert done.payment.reversed
    assert py_date(done.payment.reversal_date) == dt.date(2026, 1, 26)
    assert done.payment.reversal_reason == "transfer bounced"
    assert list(done.payment.settled_week_numbers) == []
    assert done.outstanding_amount == 5_280_000
    assert done.status == pb.LOAN_STATUS_ACTIVE

    at_26 = outstanding(stub, loan_id, dt.date(2026, 1, 26))
    assert at_26.outstanding_amount == 5_280_000  # A = 220,000, c = 2
    assert at_26.next_installment.week_number == 3  # week 3, due 01-26, current and unpaid
    assert py_date(at_26.next_installment.due_date) == dt.date(2026, 1, 26)
    assert at_26.overdue_amount == 0
    at_27 = delinquency(stub, loan_id, dt.date(2026, 1, 27))
    assert (at_27.missed_installments, at_27.delinquent, at_27.overdue_amount) == (
        1,
        False,
        110_000,
    )
    # A past date reads the corrected history: p2 never counted.
    assert outstanding(stub, loan_id, dt.date(2026, 1, 20)).outstanding_amount == 5_390_000

    listed = {p.id: p for p in all_payments(stub, loan_id)}
    assert [listed[p].reversed for p in (p1, p2, p3)] == [False, True, False]
    assert list(listed[p1].settled_week_numbers) == [1]
    assert list(listed[p3].settled_week_numbers) == [2]  # p3 now settles week 2
    assert (listed[p3].principal_amount, listed[p3].interest_amount) == (100_000, 10_000)
    assert listed[p3].outstanding_amount_after == 5_280_000  # under the live history
    schedule = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan.schedule
    assert [py_date(i.paid_date) for i in schedule[:2]] == [due(1), due(3)]
    assert not schedule[2].HasField("paid_date")
    assert schedule[2].status == pb.INSTALLMENT_STATUS_UNPAID

    # Paying again settles week 3 and accepts exactly one installment's amount.
    again = pay(stub, loan_id, 110_000)
    assert list(again.payment.settled_week_numbers) == [3]
    assert again.outstanding_amount == 5_170_000


def test_reversing_any_of_several_reallocates_the_later_ones(stub, clock):
    """p1..p4 of 110,000, 220,000, 110,000, 330,000: reverse p2 and each later
    payment now covers the weeks right after the earlier live ones."""
    loan_id = create_canonical_loan(
        stub,
        create_customer(stub),
        START,
        prepayment_policy=pb.PREPAYMENT_POLICY_WHOLE_INSTALLMENTS,
    ).id
    clock.current = due(1)
    ids = [pay(stub, loan_id, amount).payment.id for amount in (110_000, 220_000, 110_000, 330_000)]
    reverse(stub, ids[1])
    listed = {p.id: p for p in all_payments(stub, loan_id)}
    assert [list(listed[i].settled_week_numbers) for i in ids] == [[1], [], [2], [3, 4, 5]]
    assert outstanding(stub, loan_id).outstanding_amount == 5_500_000 - 550_000
    # Reverse the first too: the rest slide down again.
    reverse(stub, ids[0])
    listed = {p.id: p for p in all_payments(stub, loan_id)}
    assert [list(listed[i].settled_week_numbers) for i in ids] == [[], [], [1], [2, 3, 4]]
    live = [listed[i] for i in ids if not listed[i].reversed]
    assert sum(p.principal_amount for p in live) == 400_000
    assert sum(p.interest_amount for p in live) == 40_000


def test_a_remainder_in_the_last_installment_stays_exact(stub, clock):
    """T = 1,003 over 10 weeks: nine installments of 100 and a last of 103. With
    every one paid, reversing the first leaves A = 903: week 10 partly covered
    (3 of 103), and the next accepted amount is its remainder, 100."""
    loan_id = create_canonical_loan(
        stub, create_customer(stub), START, principal_amount=1_003, interest_rate_bps=0, weeks=10
    ).id
    clock.current = due(10)
    ids = [pay(stub, loan_id, amount).payment.id for amount in [100] * 9 + [103]]
    assert outstanding(stub, loan_id).outstanding_amount == 0
    done = reverse(stub, ids[0])
    assert done.outstanding_amount == 100
    assert done.status == pb.LOAN_STATUS_ACTIVE  # week 10, due today, is current
    listed = {p.id: p for p in all_payments(stub, loan_id)}
    assert [list(listed[i].settled_week_numbers) for i in ids[1:]] == [
        [k] for k in range(1, 10)
    ]  # p10 (103) closes week 9, 3 of week 10
    now = outstanding(stub, loan_id)
    assert (now.outstanding_amount, now.overdue_amount) == (100, 0)
    assert now.next_installment.week_number == 10
    assert now.next_installment.status == pb.INSTALLMENT_STATUS_UNPAID
    later = outstanding(stub, loan_id, due(10) + DAY)
    assert (later.overdue_amount, later.status) == (100, pb.LOAN_STATUS_ACTIVE)
    error = refused(
        stub.MakePayment,
        api.MakePaymentRequest(loan_id=loan_id, amount=103, idempotency_key=new_key()),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "100" in error.details()
    final = pay(stub, loan_id, 100)
    assert list(final.payment.settled_week_numbers) == [10]
    assert final.outstanding_amount == 0
    assert final.status == pb.LOAN_STATUS_PAID


def test_reversing_a_payoff_reopens_the_loan_and_removes_its_waiver(stub, clock, notifications):
    loan_id = create_canonical_loan(
        stub, create_customer(stub), START, payoff_interest=pb.PAYOFF_INTEREST_WAIVE_UNDUE
    ).id
    clock.current = due(1)
    pay(stub, loan_id, 110_000)
    clock.current = dt.date(2026, 1, 14)
    q = quote(stub, loan_id)
    done = pay_off(stub, loan_id, q.payoff_amount)
    assert done.status == pb.LOAN_STATUS_PAID

    reversed_ = reverse(stub, done.payment.id, reason="cheque bounced")
    assert reversed_.status == pb.LOAN_STATUS_ACTIVE
    assert reversed_.outstanding_amount == 5_390_000  # the waiver went with it
    assert quote(stub, loan_id) == q  # the same payoff is offered again

    events = read_events(
        notifications,
        2,
        loan_id=loan_id,
        kinds=[events_pb2.EVENT_KIND_PAYMENT_REVERSED, events_pb2.EVENT_KIND_LOAN_REOPENED],
    )
    assert [e.kind for e in events] == [
        events_pb2.EVENT_KIND_PAYMENT_REVERSED,
        events_pb2.EVENT_KIND_LOAN_REOPENED,
    ]
    assert events[0].payment_id == done.payment.id
    assert events[0].amount == q.payoff_amount
    assert events[0].outstanding_amount == 5_390_000


def test_a_reversal_that_leaves_the_loan_behind_makes_it_delinquent(stub, clock, notifications):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    clock.current = due(3)
    catch_up = pay(stub, loan_id, 330_000).payment.id  # weeks 1-3 on the due date of 3
    sweep(stub, due(3))
    clock.current = due(3) + DAY
    done = reverse(stub, catch_up)
    assert done.status == pb.LOAN_STATUS_DELINQUENT
    loan = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan
    assert loan.status == pb.LOAN_STATUS_DELINQUENT
    # The sweep hears of the missed weeks again, in the new history.
    assert sweep(stub, clock.current).events_written == 3
    assert sweep(stub, clock.current).events_written == 0
    events = read_events(
        notifications,
        5,
        loan_id=loan_id,
        kinds=[
            events_pb2.EVENT_KIND_LOAN_DELINQUENT,
            events_pb2.EVENT_KIND_INSTALLMENT_MISSED,
            events_pb2.EVENT_KIND_PAYMENT_REVERSED,
        ],
    )
    kinds = [e.kind for e in events]
    assert kinds[:2] == [
        events_pb2.EVENT_KIND_PAYMENT_REVERSED,
        events_pb2.EVENT_KIND_LOAN_DELINQUENT,
    ]
    assert sorted(e.week_number for e in events[2:]) == [1, 2, 3]
    assert all(k == events_pb2.EVENT_KIND_INSTALLMENT_MISSED for k in kinds[2:])
    # Paying it again is accepted: the same weeks are settled a second time, in
    # a new history version, and their events are written again.
    again = pay(stub, loan_id, 330_000)
    assert list(again.payment.settled_week_numbers) == [1, 2, 3]
    assert again.status == pb.LOAN_STATUS_ACTIVE


def test_refusals_record_nothing(stub, engine, clock):
    loan_id, (p1, p2, _p3) = worked_example(stub, clock)
    before = row_counts(engine)

    def request(**fields):
        base = dict(payment_id=p2, reason="bounced", idempotency_key=new_key("r"))
        base.update(fields)
        return api.ReversePaymentRequest(**base)

    cases = [
        (request(payment_id=999_999), grpc.StatusCode.NOT_FOUND, "payment 999999"),
        (request(payment_id=0), grpc.StatusCode.INVALID_ARGUMENT, "payment_id"),
        (request(reason=""), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (request(reason="   "), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (request(reason="x" * 501), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (request(idempotency_key=""), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
        (
            request(reversal_date=pb_date(clock.current + DAY)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "future",
        ),
        (
            request(reversal_date=pb_date(due(2) - DAY)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "before the payment's date",
        ),
    ]
    for req, code, says in cases:
        error = refused(stub.ReversePayment, req)
        assert error.code() == code, (req, error.details())
        assert says in error.details(), error.details()
    assert row_counts(engine) == before

    reverse(stub, p2)
    after_one = row_counts(engine)
    error = refused(stub.ReversePayment, request())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already reversed" in error.details()
    assert details_of(error)["ErrorInfo"].reason == "PAYMENT_ALREADY_REVERSED"
    assert row_counts(engine) == after_one


def test_idempotency(stub, engine, clock):
    loan_id, (p1, p2, p3) = worked_example(stub, clock)
    first = reverse(stub, p2, key="undo-it")
    pay(stub, loan_id, 110_000)  # the loan moves on: the retry still answers as first
    counts = row_counts(engine)
    again = reverse(stub, p2, key="undo-it")
    assert again.replayed
    assert (again.payment, again.outstanding_amount, again.status) == (
        first.payment,
        first.outstanding_amount,
        first.status,
    )
    assert row_counts(engine) == counts
    # The same key for another request: refused, naming nothing of the first one.
    for other in (dict(payment_id=p3), dict(payment_id=p2, reason="keyed to the wrong loan")):
        fields = dict(payment_id=p2, reason="transfer bounced", idempotency_key="undo-it")
        fields.update(other)
        error = refused(stub.ReversePayment, api.ReversePaymentRequest(**fields))
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        said = error.details()
        assert "transfer bounced" not in said and "loan" not in said and "payment" not in said
    assert row_counts(engine) == counts
