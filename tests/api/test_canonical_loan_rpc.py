"""The canonical loan, end to end through a real gRPC channel on both databases."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import resources_pb2 as pb

from tests.conftest import START
from tests.support.api import (
    create_canonical_loan,
    create_customer,
    details_of,
    new_key,
    pay,
    pb_date,
    py_date,
)

WEEK = dt.timedelta(days=7)


def due(week: int) -> dt.date:
    return START + week * WEEK


def test_canonical_loan_schedule(stub):
    loan = create_canonical_loan(stub, create_customer(stub), START)
    assert (loan.principal_amount, loan.interest_amount, loan.total_amount) == (
        5_000_000,
        500_000,
        5_500_000,
    )
    assert loan.weekly_payment == 110_000
    assert loan.outstanding_amount == 5_500_000
    assert loan.currency_code == "IDR"
    assert loan.delinquency_threshold == 2
    assert loan.status == pb.LOAN_STATUS_ACTIVE
    assert [i.week_number for i in loan.schedule] == list(range(1, 51))
    assert {(i.amount, i.principal_amount, i.interest_amount) for i in loan.schedule} == {
        (110_000, 100_000, 10_000)
    }
    assert [py_date(i.due_date) for i in loan.schedule] == [due(k) for k in range(1, 51)]
    assert all(i.status == pb.INSTALLMENT_STATUS_UNPAID for i in loan.schedule)


def test_canonical_timeline(stub, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id

    clock.current = due(1)
    first = pay(stub, loan_id, 110_000)
    assert list(first.payment.settled_week_numbers) == [1]
    assert first.outstanding_amount == 5_390_000
    assert first.status == pb.LOAN_STATUS_ACTIVE
    assert py_date(first.payment.payment_date) == due(1)

    clock.current = due(2)
    assert pay(stub, loan_id, 110_000).outstanding_amount == 5_280_000

    # Weeks 3 and 4 pass unpaid: the day after week 4's due date the borrower is delinquent.
    clock.current = due(4)
    on_due = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert (on_due.delinquent, on_due.missed_installments) == (False, 1)
    clock.current = due(4) + dt.timedelta(days=1)
    late = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert late.delinquent
    assert late.missed_installments == 2
    assert late.overdue_amount == 220_000
    assert late.days_past_due == 8
    assert py_date(late.as_of) == clock.current
    outstanding = stub.GetOutstanding(api.GetOutstandingRequest(loan_id=loan_id))
    assert outstanding.outstanding_amount == 5_280_000
    assert outstanding.outstanding_principal_amount == 4_800_000
    assert outstanding.outstanding_interest_amount == 480_000
    assert outstanding.overdue_amount == 220_000
    assert outstanding.next_installment.week_number == 3
    assert outstanding.next_installment.status == pb.INSTALLMENT_STATUS_OVERDUE
    assert outstanding.status == pb.LOAN_STATUS_DELINQUENT

    # Paying ahead is refused, with the amounts that would be accepted.
    clock.current = due(4) + dt.timedelta(days=2)
    with pytest.raises(grpc.RpcError) as refused:
        pay(stub, loan_id, 440_000)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "110,000, 220,000, 330,000" in refused.value.details()
    info = details_of(refused.value)["ErrorInfo"]
    assert info.reason == "PAYMENT_AMOUNT_NOT_ACCEPTED"
    assert info.metadata["accepted_amounts"] == "110000,220000,330000"

    cured = pay(stub, loan_id, 330_000)
    assert list(cured.payment.settled_week_numbers) == [3, 4, 5]
    assert cured.status == pb.LOAN_STATUS_ACTIVE
    assert not stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id)).delinquent

    # The past is still answerable: on the day after week 4's due date it was delinquent.
    was = stub.IsDelinquent(
        api.IsDelinquentRequest(loan_id=loan_id, as_of=pb_date(due(4) + dt.timedelta(days=1)))
    )
    assert was.delinquent
    # A read sees the end of its day: on the catch-up's own date it is cured.
    assert not stub.IsDelinquent(
        api.IsDelinquentRequest(loan_id=loan_id, as_of=pb_date(clock.current))
    ).delinquent
    assert (
        stub.IsDelinquent(
            api.IsDelinquentRequest(loan_id=loan_id, as_of=pb_date(due(4) - dt.timedelta(days=1)))
        ).missed_installments
        == 1
    )  # only week 3 had fallen due
    past = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id, as_of=pb_date(due(2))))
    assert past.loan.outstanding_amount == 5_280_000
    statuses = [i.status for i in past.loan.schedule[:4]]
    assert statuses == [pb.INSTALLMENT_STATUS_PAID] * 2 + [pb.INSTALLMENT_STATUS_UNPAID] * 2
    assert not past.loan.schedule[2].HasField("paid_date")

    # Nothing payable until week 6 is current: the refusal says from when.
    with pytest.raises(grpc.RpcError) as early:
        pay(stub, loan_id, 110_000)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"payable from {due(5) + dt.timedelta(days=1)}" in early.value.details()

    # Pay the rest week by week to zero.
    for week in range(6, 51):
        clock.current = due(week)
        response = pay(stub, loan_id, 110_000)
        assert response.outstanding_amount == 5_500_000 - 110_000 * week
    assert response.status == pb.LOAN_STATUS_PAID
    final = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan
    assert final.outstanding_amount == 0
    assert final.status == pb.LOAN_STATUS_PAID
    assert all(i.status == pb.INSTALLMENT_STATUS_PAID for i in final.schedule)
    with pytest.raises(grpc.RpcError) as done:
        pay(stub, loan_id, 110_000)
    assert done.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "fully paid" in done.value.details()

    payments = stub.ListPayments(api.ListPaymentsRequest(loan_id=loan_id, page_size=1000))
    assert sum(p.amount for p in payments.payments) == 5_500_000
    settled = [w for p in payments.payments for w in p.settled_week_numbers]
    assert settled == list(range(1, 51))


def test_catch_up_after_the_last_due_date(stub, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START, weeks=4).id
    clock.current = due(10)
    late = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert (late.missed_installments, late.days_past_due) == (4, 63)
    with pytest.raises(grpc.RpcError) as refused:
        pay(stub, loan_id, 1)
    assert details_of(refused.value)["ErrorInfo"].metadata["accepted_amounts"] == (
        "1375000,2750000,4125000,5500000"
    )
    paid = pay(stub, loan_id, 5_500_000)
    assert list(paid.payment.settled_week_numbers) == [1, 2, 3, 4]
    assert paid.status == pb.LOAN_STATUS_PAID


def test_custom_threshold_and_currency(stub, clock):
    loan = create_canonical_loan(
        stub,
        create_customer(stub),
        START,
        delinquency_threshold=1,
        currency_code="USD",
        principal_amount=1_000,
        interest_rate_bps=1_250,
        weeks=3,
    )
    # 1,000 + 125 interest over 3 weeks: 375 each; portions sum to 1,000 and 125.
    assert [i.amount for i in loan.schedule] == [375, 375, 375]
    assert sum(i.principal_amount for i in loan.schedule) == 1_000
    assert sum(i.interest_amount for i in loan.schedule) == 125
    clock.current = due(1) + dt.timedelta(days=1)
    answer = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan.id))
    assert answer.delinquent and answer.delinquency_threshold == 1
    assert answer.currency_code == "USD"


def test_start_date_defaults_to_business_date(stub, clock):
    clock.current = dt.date(2026, 3, 2)
    request = api.CreateLoanRequest(
        customer_id=create_customer(stub),
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        request_id=new_key("loan"),
    )
    loan = stub.CreateLoan(request).loan
    assert py_date(loan.start_date) == clock.current
    assert py_date(loan.schedule[0].due_date) == dt.date(2026, 3, 9)


def test_refusal_of_a_loan_far_behind_stays_small(stub, clock):
    """520 accepted amounts would not fit a client's 16 KB of metadata: the
    refusal names the first ten and how many there are."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START, weeks=520).id
    clock.current = due(520)
    with pytest.raises(grpc.RpcError) as refused:
        pay(stub, loan_id, 1)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "(520 amounts in all: the oldest 1 to 520 unpaid installments, up to 5,500,000)" in (
        refused.value.details()
    )
    info = details_of(refused.value)["ErrorInfo"]
    assert info.metadata["accepted_amounts"].split(",")[:2] == ["10576", "21152"]
    assert len(info.metadata["accepted_amounts"].split(",")) == 10
    assert info.metadata["accepted_amounts_count"] == "520"
    assert info.metadata["max_accepted_amount"] == "5500000"
