"""Rules v2 over gRPC: a loan's prepayment policy and payoff-interest setting, and
every payment's principal / interest split, on both databases."""

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
    row_counts,
)

WEEK = dt.timedelta(days=7)
WHOLE = pb.PREPAYMENT_POLICY_WHOLE_INSTALLMENTS


def due(week: int) -> dt.date:
    return START + week * WEEK


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def refused_payment(stub, loan_id: int, amount: int) -> grpc.RpcError:
    return refused(
        stub.MakePayment,
        api.MakePaymentRequest(loan_id=loan_id, amount=amount, idempotency_key=new_key()),
    )


def all_payments(stub, loan_id: int) -> list[pb.Payment]:
    payments, token = [], ""
    while True:
        page = stub.ListPayments(
            api.ListPaymentsRequest(loan_id=loan_id, page_size=1000, page_token=token)
        )
        payments.extend(page.payments)
        token = page.next_page_token
        if not token:
            return payments


def interest_part(interest: int, total: int, paid: int) -> int:
    """J(x) of rules v2, written out independently of the domain."""
    return interest * paid // total


def test_settings_are_echoed_by_create_and_get(stub):
    customer = create_customer(stub)
    default = create_canonical_loan(stub, customer, START)
    assert default.prepayment_policy == pb.PREPAYMENT_POLICY_DUE_ONLY
    assert default.payoff_interest == pb.PAYOFF_INTEREST_FULL

    chosen = create_canonical_loan(
        stub,
        customer,
        START,
        prepayment_policy=WHOLE,
        payoff_interest=pb.PAYOFF_INTEREST_WAIVE_UNDUE,
    )
    assert chosen.prepayment_policy == WHOLE
    assert chosen.payoff_interest == pb.PAYOFF_INTEREST_WAIVE_UNDUE

    for loan in (default, chosen):
        read = stub.GetLoan(api.GetLoanRequest(loan_id=loan.id)).loan
        assert (read.prepayment_policy, read.payoff_interest) == (
            loan.prepayment_policy,
            loan.payoff_interest,
        )
        past = stub.GetLoan(api.GetLoanRequest(loan_id=loan.id, as_of=pb_date(START))).loan
        assert (past.prepayment_policy, past.payoff_interest) == (
            loan.prepayment_policy,
            loan.payoff_interest,
        )
    listed = stub.ListLoans(api.ListLoansRequest(customer_id=customer)).loans
    assert {(loan.id, loan.prepayment_policy, loan.payoff_interest) for loan in listed} == {
        (default.id, pb.PREPAYMENT_POLICY_DUE_ONLY, pb.PAYOFF_INTEREST_FULL),
        (chosen.id, WHOLE, pb.PAYOFF_INTEREST_WAIVE_UNDUE),
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("prepayment_policy", 7), ("payoff_interest", 9), ("prepayment_policy", -1)],
)
def test_an_unknown_enum_number_is_invalid_argument(stub, engine, field, value):
    customer = create_customer(stub)
    before = row_counts(engine)
    request = api.CreateLoanRequest(
        customer_id=customer,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=pb_date(START),
        request_id=new_key("loan"),
    )
    setattr(request, field, value)
    error = refused(stub.CreateLoan, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details_of(error)["BadRequest"].field_violations
    assert [v.field for v in violations] == [field]
    assert str(value) in violations[0].description
    assert row_counts(engine) == before


def test_create_retry_compares_the_settings(stub, engine):
    customer = create_customer(stub)
    first = create_canonical_loan(stub, customer, START, prepayment_policy=WHOLE, request_id="l-1")
    again = create_canonical_loan(stub, customer, START, prepayment_policy=WHOLE, request_id="l-1")
    assert again.id == first.id
    counts = row_counts(engine)
    for other in (
        dict(prepayment_policy=pb.PREPAYMENT_POLICY_DUE_ONLY),
        dict(),  # unspecified is DUE_ONLY: another policy than the first request's
        dict(prepayment_policy=WHOLE, payoff_interest=pb.PAYOFF_INTEREST_WAIVE_UNDUE),
    ):
        error = refused(
            stub.CreateLoan,
            api.CreateLoanRequest(
                customer_id=customer,
                principal_amount=5_000_000,
                interest_rate_bps=1000,
                weeks=50,
                start_date=pb_date(START),
                request_id="l-1",
                **other,
            ),
        )
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_counts(engine) == counts

    # Unspecified and the explicit defaults are the same request.
    plain = create_canonical_loan(stub, customer, START, request_id="l-2")
    explicit = create_canonical_loan(
        stub,
        customer,
        START,
        request_id="l-2",
        prepayment_policy=pb.PREPAYMENT_POLICY_DUE_ONLY,
        payoff_interest=pb.PAYOFF_INTEREST_FULL,
    )
    assert explicit.id == plain.id


def test_due_only_still_refuses_paying_ahead(stub, clock):
    customer = create_customer(stub)
    for policy in (pb.PREPAYMENT_POLICY_UNSPECIFIED, pb.PREPAYMENT_POLICY_DUE_ONLY):
        loan_id = create_canonical_loan(stub, customer, START, prepayment_policy=policy).id
        clock.current = START
        error = refused_payment(stub, loan_id, 220_000)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = details_of(error)["ErrorInfo"]
        assert info.reason == "PAYMENT_AMOUNT_NOT_ACCEPTED"
        assert info.metadata["accepted_amounts"] == "110000"
        assert info.metadata["accepted_amounts_count"] == "1"
        paid = pay(stub, loan_id, 110_000)
        assert list(paid.payment.settled_week_numbers) == [1]
        # Week 2 is not current until week 1's due date has passed.
        nothing = refused_payment(stub, loan_id, 110_000)
        assert nothing.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "installment 2 (due 2026-01-19) is payable from 2026-01-13" in nothing.details()


def test_whole_installments_pay_ahead_whole_and_oldest_first(stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START, prepayment_policy=WHOLE).id
    clock.current = START

    # On the start date every installment is payable, whole: the refusal names
    # amounts up to the whole loan.
    before = row_counts(engine)
    partial = refused_payment(stub, loan_id, 150_000)
    assert partial.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = details_of(partial)["ErrorInfo"]
    assert info.metadata["accepted_amounts"] == ",".join(str(110_000 * k) for k in range(1, 11))
    assert info.metadata["accepted_amounts_count"] == "50"
    assert info.metadata["max_accepted_amount"] == "5500000"
    assert "up to 5,500,000" in partial.details()
    assert row_counts(engine) == before

    ahead = pay(stub, loan_id, 330_000)
    assert list(ahead.payment.settled_week_numbers) == [1, 2, 3]
    assert ahead.outstanding_amount == 5_170_000
    assert ahead.status == pb.LOAN_STATUS_ACTIVE
    assert ahead.payment.kind == pb.PAYMENT_KIND_REGULAR
    assert (ahead.payment.principal_amount, ahead.payment.interest_amount) == (300_000, 30_000)

    # Weeks 4 to 50 remain, payable whole: half an installment is refused.
    half = refused_payment(stub, loan_id, 55_000)
    info = details_of(half)["ErrorInfo"]
    assert info.metadata["accepted_amounts"].startswith("110000,220000,")
    assert info.metadata["accepted_amounts_count"] == "47"
    assert info.metadata["max_accepted_amount"] == "5170000"
    assert refused_payment(stub, loan_id, 5_170_001).code() == grpc.StatusCode.INVALID_ARGUMENT

    # Paid ahead, nothing is missed until week 4 falls due.
    clock.current = due(3) + dt.timedelta(days=1)
    state = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert (state.missed_installments, state.overdue_amount) == (0, 0)
    schedule = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan.schedule
    assert [i.status for i in schedule[:4]] == [pb.INSTALLMENT_STATUS_PAID] * 3 + [
        pb.INSTALLMENT_STATUS_UNPAID
    ]
    next_one = stub.GetOutstanding(api.GetOutstandingRequest(loan_id=loan_id)).next_installment
    assert next_one.week_number == 4

    rest = pay(stub, loan_id, 5_170_000)
    assert list(rest.payment.settled_week_numbers) == list(range(4, 51))
    assert rest.status == pb.LOAN_STATUS_PAID
    assert rest.outstanding_amount == 0
    assert (rest.payment.principal_amount, rest.payment.interest_amount) == (4_700_000, 470_000)
    payments = all_payments(stub, loan_id)
    assert [p.id for p in payments] == [ahead.payment.id, rest.payment.id]
    assert payments == [ahead.payment, rest.payment]


def test_canonical_loan_payments_split_exactly(stub, clock):
    """Every 110,000 of the canonical loan is 100,000 of principal and 10,000 of
    interest; over the loan the parts add up to exactly 5,000,000 and 500,000."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    for week in range(1, 51):
        clock.current = due(week)
        paid = pay(stub, loan_id, 110_000)
        assert list(paid.payment.settled_week_numbers) == [week]
        assert (paid.payment.principal_amount, paid.payment.interest_amount) == (100_000, 10_000)
        assert paid.payment.kind == pb.PAYMENT_KIND_REGULAR
    assert paid.status == pb.LOAN_STATUS_PAID
    payments = all_payments(stub, loan_id)
    assert len(payments) == 50
    assert all(p.principal_amount + p.interest_amount == p.amount for p in payments)
    assert sum(p.principal_amount for p in payments) == 5_000_000
    assert sum(p.interest_amount for p in payments) == 500_000
    assert {p.kind for p in payments} == {pb.PAYMENT_KIND_REGULAR}


def test_uneven_loan_payments_split_by_the_cumulative_rule(stub, clock):
    """A loan whose interest does not divide evenly, paid in uneven whole-installment
    chunks: each payment's interest is J(A after) - J(A before), the parts add up to
    the amount, and over the loan to exactly the principal and the interest."""
    loan = create_canonical_loan(
        stub,
        create_customer(stub),
        START,
        principal_amount=1_000_000,
        interest_rate_bps=1234,
        weeks=7,
        prepayment_policy=WHOLE,
    )
    principal, interest, total = loan.principal_amount, loan.interest_amount, loan.total_amount
    assert total == principal + interest
    amounts = [i.amount for i in loan.schedule]
    assert len(set(amounts)) == 2  # the last installment absorbs a remainder

    clock.current = START
    paid_amount, week = 0, 0
    for chunk in (1, 3, 2, 1):
        amount = sum(amounts[week : week + chunk])
        response = pay(stub, loan.id, amount)
        payment = response.payment
        assert list(payment.settled_week_numbers) == list(range(week + 1, week + chunk + 1))
        expected_interest = interest_part(interest, total, paid_amount + amount) - interest_part(
            interest, total, paid_amount
        )
        assert payment.interest_amount == expected_interest
        assert payment.principal_amount == amount - expected_interest
        assert payment.principal_amount >= 0 and payment.interest_amount >= 0
        paid_amount += amount
        week += chunk
        assert response.outstanding_amount == total - paid_amount
    assert response.status == pb.LOAN_STATUS_PAID
    payments = all_payments(stub, loan.id)
    assert len(payments) == 4
    assert all(p.principal_amount + p.interest_amount == p.amount for p in payments)
    assert sum(p.principal_amount for p in payments) == principal
    assert sum(p.interest_amount for p in payments) == interest


def test_a_replayed_payment_answers_the_same_split(stub, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START, prepayment_policy=WHOLE).id
    clock.current = START
    first = pay(stub, loan_id, 220_000, key="split-1")
    again = pay(stub, loan_id, 220_000, key="split-1")
    assert again.replayed
    assert again.payment == first.payment
    assert (again.payment.principal_amount, again.payment.interest_amount) == (200_000, 20_000)
    assert again.payment.kind == pb.PAYMENT_KIND_REGULAR
