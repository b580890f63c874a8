"""Rules v2, "Payoff", over gRPC on both databases: GetPayoffQuote and PayOffLoan
under both payoff-interest settings, the spec's worked example exactly, refusals
that record nothing, idempotency, events, and the exact principal / interest split
over a whole loan."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import events_pb2, notification_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import resources_pb2 as pb

from tests.api.test_events import read_events
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
WAIVE = pb.PAYOFF_INTEREST_WAIVE_UNDUE
FULL = pb.PAYOFF_INTEREST_FULL
WORKED_EXAMPLE_DAY = dt.date(2026, 3, 18)  # week 11 (due 03-23) is current


def due(week: int) -> dt.date:
    return START + week * WEEK


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def quote(stub, loan_id: int, on: dt.date | None = None) -> api.GetPayoffQuoteResponse:
    request = api.GetPayoffQuoteRequest(loan_id=loan_id)
    if on is not None:
        request.as_of.CopyFrom(pb_date(on))
    return stub.GetPayoffQuote(request)


def payoff_request(
    loan_id: int, amount: int, on: dt.date | None = None, key: str | None = None
) -> api.PayOffLoanRequest:
    request = api.PayOffLoanRequest(
        loan_id=loan_id, amount=amount, idempotency_key=key or new_key("payoff")
    )
    if on is not None:
        request.payment_date.CopyFrom(pb_date(on))
    return request


def pay_off(stub, loan_id: int, amount: int, on: dt.date | None = None, key: str | None = None):
    return stub.PayOffLoan(payoff_request(loan_id, amount, on, key))


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


def loan_with_weeks_paid(stub, clock, weeks: int, **settings) -> int:
    """A canonical loan (start 2026-01-05) whose weeks 1..`weeks` were each paid on
    its due date."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START, **settings).id
    for week in range(1, weeks + 1):
        clock.current = due(week)
        assert list(pay(stub, loan_id, 110_000).payment.settled_week_numbers) == [week]
    return loan_id


# The rules' arithmetic, written out independently of the domain.


def interest_part(interest: int, total: int, paid: int) -> int:
    """J(x) = floor(I * x / T)."""
    return interest * paid // total


def expected_quote(
    principal: int, interest: int, weeks: int, start: dt.date, paid: int, on: dt.date, waive: bool
) -> tuple[int, int, int, int]:
    """(payoff, principal part, interest part, waived) of rules v2 "Payoff"."""
    total = principal + interest
    each = total // weeks

    def cum(k: int) -> int:
        return total if k >= weeks else k * each

    due_before = sum(1 for k in range(1, weeks + 1) if start + k * WEEK < on)
    current = min(due_before + 1, weeks)
    waived = (
        interest
        - max(interest_part(interest, total, cum(current)), interest_part(interest, total, paid))
        if waive
        else 0
    )
    amount = total - paid - waived
    principal_part = principal - (paid - interest_part(interest, total, paid))
    return amount, principal_part, amount - principal_part, waived


# The worked example


def test_worked_example_quote_under_waive_undue_and_full(stub, clock):
    waived_loan = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    full_loan = loan_with_weeks_paid(stub, clock, 10)  # FULL is the default
    clock.current = WORKED_EXAMPLE_DAY

    q = quote(stub, waived_loan, WORKED_EXAMPLE_DAY)
    assert q.loan_id == waived_loan
    assert (q.payoff_amount, q.principal_amount, q.interest_amount) == (
        4_010_000,
        4_000_000,
        10_000,
    )
    assert q.waived_interest_amount == 390_000
    assert py_date(q.valid_on) == WORKED_EXAMPLE_DAY
    assert q.currency_code == "IDR"
    outstanding = stub.GetOutstanding(api.GetOutstandingRequest(loan_id=waived_loan))
    assert outstanding.outstanding_amount == 4_400_000  # A = 1,100,000
    assert q.payoff_amount == outstanding.outstanding_amount - q.waived_interest_amount
    assert q.principal_amount == outstanding.outstanding_principal_amount

    f = quote(stub, full_loan, WORKED_EXAMPLE_DAY)
    assert (f.payoff_amount, f.principal_amount, f.interest_amount, f.waived_interest_amount) == (
        4_400_000,
        4_000_000,
        400_000,
        0,
    )
    assert py_date(f.valid_on) == WORKED_EXAMPLE_DAY

    # Without as_of the quote is for the business date.
    assert quote(stub, waived_loan) == q
    assert quote(stub, full_loan) == f


def test_a_quote_is_for_its_date_only(stub, clock):
    """The quote moves with the date: the current installment's interest is owed,
    later ones are waived, and after the last due date nothing is waived."""
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    clock.current = dt.date(2026, 12, 31)
    by_date = {
        due(10): (4_000_000, 400_000),  # on its due date week 10 (paid) is current: no interest
        due(10) + DAY: (4_010_000, 390_000),  # week 11 current
        due(11): (4_010_000, 390_000),
        due(11) + DAY: (4_020_000, 380_000),  # week 12 current
        due(49) + DAY: (4_400_000, 0),  # week 50 current: nothing left to waive
        due(50) + 30 * DAY: (4_400_000, 0),
    }
    for on, (amount, waived) in by_date.items():
        q = quote(stub, loan_id, on)
        assert (q.payoff_amount, q.waived_interest_amount, py_date(q.valid_on)) == (
            amount,
            waived,
            on,
        ), on
        assert q.principal_amount == 4_000_000
        assert q.interest_amount == amount - 4_000_000
    # At a past date the quote counts only the payments made by then.
    early = quote(stub, loan_id, due(2))
    assert (early.payoff_amount, early.principal_amount, early.waived_interest_amount) == (
        5_280_000 - 480_000,
        4_800_000,
        480_000,
    )


def test_pay_off_with_the_quoted_amount(stub, engine, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    clock.current = WORKED_EXAMPLE_DAY
    q = quote(stub, loan_id)
    regular = all_payments(stub, loan_id)
    assert len(regular) == 10

    done = pay_off(stub, loan_id, q.payoff_amount, WORKED_EXAMPLE_DAY)
    assert not done.replayed
    assert done.status == pb.LOAN_STATUS_PAID
    assert done.waived_interest_amount == 390_000
    payment = done.payment
    assert payment.kind == pb.PAYMENT_KIND_PAYOFF
    assert payment.loan_id == loan_id
    assert payment.amount == 4_010_000
    assert py_date(payment.payment_date) == WORKED_EXAMPLE_DAY
    assert list(payment.settled_week_numbers) == list(range(11, 51))
    assert (payment.principal_amount, payment.interest_amount) == (
        q.principal_amount,
        q.interest_amount,
    )
    assert payment.waived_interest_amount == q.waived_interest_amount == 390_000
    assert payment.outstanding_amount_after == 0
    assert payment.currency_code == "IDR"
    assert all(p.waived_interest_amount == 0 for p in regular)

    after = stub.GetOutstanding(api.GetOutstandingRequest(loan_id=loan_id))
    assert (after.outstanding_amount, after.status) == (0, pb.LOAN_STATUS_PAID)
    assert (after.outstanding_principal_amount, after.outstanding_interest_amount) == (0, 0)
    assert (after.overdue_amount, after.HasField("next_installment")) == (0, False)
    loan = stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan
    assert loan.status == pb.LOAN_STATUS_PAID
    assert {line.status for line in loan.schedule} == {pb.INSTALLMENT_STATUS_PAID}
    assert stub.ListLoans(api.ListLoansRequest(status=pb.LOAN_STATUS_PAID)).loans[0].id == loan_id
    # The day before, the loan stood as it was.
    before = stub.GetOutstanding(
        api.GetOutstandingRequest(loan_id=loan_id, as_of=pb_date(WORKED_EXAMPLE_DAY - DAY))
    )
    assert (before.outstanding_amount, before.status) == (4_400_000, pb.LOAN_STATUS_ACTIVE)
    assert quote(stub, loan_id, WORKED_EXAMPLE_DAY - DAY).payoff_amount == 4_010_000

    payments = all_payments(stub, loan_id)
    assert payments == [*regular, payment]
    assert sum(p.principal_amount for p in payments) == 5_000_000
    assert sum(p.interest_amount + p.waived_interest_amount for p in payments) == 500_000
    assert all(p.principal_amount + p.interest_amount == p.amount for p in payments)

    # Paid: no second quote, no second payoff, no payment; nothing is written.
    counts = row_counts(engine)
    for error in (
        refused(stub.GetPayoffQuote, api.GetPayoffQuoteRequest(loan_id=loan_id)),
        refused(stub.PayOffLoan, payoff_request(loan_id, 0)),
        refused(stub.PayOffLoan, payoff_request(loan_id, 4_010_000)),
        refused(
            stub.MakePayment,
            api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key=new_key()),
        ),
    ):
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert details_of(error)["ErrorInfo"].reason == "LOAN_FULLY_PAID"
    assert row_counts(engine) == counts


def test_full_payoff_owes_all_the_interest(stub, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=FULL)
    clock.current = WORKED_EXAMPLE_DAY
    done = pay_off(stub, loan_id, 4_400_000)
    assert done.status == pb.LOAN_STATUS_PAID
    assert done.waived_interest_amount == 0
    assert (done.payment.principal_amount, done.payment.interest_amount) == (4_000_000, 400_000)
    assert done.payment.waived_interest_amount == 0
    assert list(done.payment.settled_week_numbers) == list(range(11, 51))
    payments = all_payments(stub, loan_id)
    assert sum(p.principal_amount for p in payments) == 5_000_000
    assert sum(p.interest_amount for p in payments) == 500_000


@pytest.mark.parametrize(
    "policy", [pb.PREPAYMENT_POLICY_DUE_ONLY, pb.PREPAYMENT_POLICY_WHOLE_INSTALLMENTS]
)
def test_payoff_is_allowed_under_either_prepayment_policy(stub, clock, policy):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE, prepayment_policy=policy)
    clock.current = WORKED_EXAMPLE_DAY
    if policy == pb.PREPAYMENT_POLICY_DUE_ONLY:  # paying ahead of week 11 is refused here
        error = refused(
            stub.MakePayment,
            api.MakePaymentRequest(loan_id=loan_id, amount=220_000, idempotency_key=new_key()),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details_of(error)["ErrorInfo"].metadata["accepted_amounts"] == "110000"
    done = pay_off(stub, loan_id, 4_010_000)
    assert done.status == pb.LOAN_STATUS_PAID
    assert list(done.payment.settled_week_numbers) == list(range(11, 51))


def test_a_payoff_on_the_start_date(stub, clock):
    """Nothing paid, on the start date: week 1 is current, its interest is owed."""
    loan_id = create_canonical_loan(stub, create_customer(stub), START, payoff_interest=WAIVE).id
    clock.current = START
    q = quote(stub, loan_id)
    assert (q.payoff_amount, q.principal_amount, q.interest_amount, q.waived_interest_amount) == (
        5_010_000,
        5_000_000,
        10_000,
        490_000,
    )
    done = pay_off(stub, loan_id, 5_010_000)
    assert list(done.payment.settled_week_numbers) == list(range(1, 51))
    assert done.status == pb.LOAN_STATUS_PAID


# Refusals record nothing


@pytest.mark.parametrize("amount", [4_400_000, 4_009_999, 4_010_001, 110_000, 0, -4_010_000])
def test_a_wrong_amount_names_the_quote_and_records_nothing(stub, engine, clock, amount):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    clock.current = WORKED_EXAMPLE_DAY
    listed = all_payments(stub, loan_id)
    counts = row_counts(engine)
    error = refused(stub.PayOffLoan, payoff_request(loan_id, amount, WORKED_EXAMPLE_DAY))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = details_of(error)
    assert [v.field for v in details["BadRequest"].field_violations] == ["amount"]
    if amount > 0:
        info = details["ErrorInfo"]
        assert info.reason == "PAYOFF_AMOUNT_NOT_QUOTED"
        assert info.metadata["payoff_amount"] == "4010000"
        assert info.metadata["valid_on"] == "2026-03-18"
        assert "4,010,000" in error.details()
        assert "2026-03-18" in error.details()
    assert row_counts(engine) == counts
    assert all_payments(stub, loan_id) == listed
    assert quote(stub, loan_id).payoff_amount == 4_010_000


def test_unknown_loans_and_bad_requests(stub, engine, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 2, payoff_interest=WAIVE)
    counts = row_counts(engine)
    for error in (
        refused(stub.GetPayoffQuote, api.GetPayoffQuoteRequest(loan_id=424242)),
        refused(stub.PayOffLoan, payoff_request(424242, 4_830_000)),
    ):
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "424242 does not exist" in error.details()
    for request, field in (
        (api.PayOffLoanRequest(loan_id=loan_id, amount=4_830_000), "idempotency_key"),
        (payoff_request(0, 4_830_000), "loan_id"),
    ):
        error = refused(stub.PayOffLoan, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [v.field for v in details_of(error)["BadRequest"].field_violations]
    error = refused(stub.GetPayoffQuote, api.GetPayoffQuoteRequest(loan_id=0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert row_counts(engine) == counts


def test_payment_date_rules_are_makepayments(stub, engine, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 2, payoff_interest=WAIVE)
    clock.current = due(4)
    counts = row_counts(engine)
    for on, reason in (
        (due(4) + DAY, "PAYMENT_DATE_IN_FUTURE"),
        (START - DAY, "PAYMENT_DATE_BEFORE_START"),
        (due(2) - DAY, "PAYMENT_DATE_BEFORE_LATEST_PAYMENT"),
    ):
        amount = quote(stub, loan_id, max(on, START)).payoff_amount
        error = refused(stub.PayOffLoan, payoff_request(loan_id, amount, on))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, on
        assert details_of(error)["ErrorInfo"].reason == reason
    assert row_counts(engine) == counts
    # On the latest payment's date itself, a payoff is accepted.
    done = pay_off(stub, loan_id, quote(stub, loan_id, due(2)).payoff_amount, due(2))
    assert done.status == pb.LOAN_STATUS_PAID
    assert py_date(done.payment.payment_date) == due(2)


def test_reads_before_the_start_are_out_of_range(stub, engine, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START, payoff_interest=WAIVE).id
    counts = row_counts(engine)
    early = pb_date(START - DAY)
    for call, request in (
        (stub.GetPayoffQuote, api.GetPayoffQuoteRequest(loan_id=loan_id, as_of=early)),
        (stub.GetOutstanding, api.GetOutstandingRequest(loan_id=loan_id, as_of=early)),
        (stub.IsDelinquent, api.IsDelinquentRequest(loan_id=loan_id, as_of=early)),
        (stub.GetLoan, api.GetLoanRequest(loan_id=loan_id, as_of=early)),
    ):
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error.details()
        assert details_of(error)["ErrorInfo"].reason == "DATE_BEFORE_LOAN_START"
        assert "2026-01-05" in error.details()
    assert row_counts(engine) == counts
    # The start date itself is in range.
    assert py_date(quote(stub, loan_id, START).valid_on) == START


# Idempotency


def test_a_retry_replays_the_payoff(stub, engine, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    clock.current = WORKED_EXAMPLE_DAY
    first = pay_off(stub, loan_id, 4_010_000, WORKED_EXAMPLE_DAY, key="close-it")
    counts = row_counts(engine)

    # Even after the loan is paid, and on a later day with the date left to the server.
    clock.current = WORKED_EXAMPLE_DAY + 3 * DAY
    for on in (WORKED_EXAMPLE_DAY, None):
        again = pay_off(stub, loan_id, 4_010_000, on, key="close-it")
        assert again.replayed
        assert again.payment == first.payment
        assert (again.status, again.waived_interest_amount) == (
            first.status,
            first.waived_interest_amount,
        )
    assert row_counts(engine) == counts
    assert len(all_payments(stub, loan_id)) == 11


def test_the_same_key_for_another_request_is_already_exists(stub, engine, clock):
    loan_id = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    other_loan = loan_with_weeks_paid(stub, clock, 10, payoff_interest=WAIVE)
    clock.current = WORKED_EXAMPLE_DAY
    pay_off(stub, loan_id, 4_010_000, key="close-it")
    pay(stub, other_loan, 110_000, key="regular-key")
    counts = row_counts(engine)
    first = (f"loan {loan_id}", "4,010,000", "4010000", "2026-03-18")  # the payoff's request
    regular = (f"loan {other_loan}", "110,000", "110000", "2026-03-18")  # the payment's
    for call, request, secrets in (
        (stub.PayOffLoan, payoff_request(loan_id, 4_020_000, key="close-it"), first[1:]),
        (
            stub.PayOffLoan,
            payoff_request(loan_id, 4_010_000, WORKED_EXAMPLE_DAY - DAY, "close-it"),
            first[-1:],
        ),
        (stub.PayOffLoan, payoff_request(other_loan, 3_900_000, key="close-it"), first),
        # A payment's key is not a payoff's, nor the other way round.
        (stub.PayOffLoan, payoff_request(other_loan, 110_000, key="regular-key"), regular[-1:]),
        (
            stub.MakePayment,
            api.MakePaymentRequest(loan_id=loan_id, amount=4_010_000, idempotency_key="close-it"),
            first[-1:],
        ),
    ):
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error.details()
        assert details_of(error)["ErrorInfo"].reason == "IDEMPOTENCY_KEY_REUSED"
        # Nothing of the first request is revealed that this one did not send.
        for secret in secrets:
            assert secret not in error.details(), (secret, error.details())
    assert row_counts(engine) == counts


# Events


def test_paying_off_a_delinquent_loan_cures_it(stub, channel, clock):
    notifications = notification_service_pb2_grpc.NotificationServiceStub(channel)
    loan_id = loan_with_weeks_paid(stub, clock, 2, payoff_interest=WAIVE)
    clock.current = due(4) + DAY  # weeks 3 and 4 missed
    sweep = stub.RunDelinquencySweep(api.RunDelinquencySweepRequest())
    assert sweep.newly_delinquent == 1
    assert stub.GetLoan(api.GetLoanRequest(loan_id=loan_id)).loan.status == (
        pb.LOAN_STATUS_DELINQUENT
    )

    # A = 220,000; week 5 is current: its interest and the overdue weeks' are owed.
    q = quote(stub, loan_id)
    assert (q.payoff_amount, q.principal_amount, q.interest_amount, q.waived_interest_amount) == (
        4_830_000,
        4_800_000,
        30_000,
        450_000,
    )
    done = pay_off(stub, loan_id, q.payoff_amount)
    assert done.status == pb.LOAN_STATUS_PAID
    assert list(done.payment.settled_week_numbers) == list(range(3, 51))
    status = stub.IsDelinquent(api.IsDelinquentRequest(loan_id=loan_id))
    assert (status.delinquent, status.missed_installments, status.overdue_amount) == (False, 0, 0)

    kinds = [
        events_pb2.EVENT_KIND_PAYMENT_RECEIVED,
        events_pb2.EVENT_KIND_DELINQUENCY_CURED,
        events_pb2.EVENT_KIND_LOAN_PAID_OFF,
    ]
    got = read_events(notifications, 5, loan_id=loan_id, kinds=kinds)
    payoff_events = [e for e in got if py_date(e.business_date) == clock.current]
    assert sorted(e.kind for e in payoff_events) == sorted(kinds)
    received = next(e for e in payoff_events if e.kind == kinds[0])
    assert (received.payment_id, received.amount) == (done.payment.id, 4_830_000)
    paid_off = next(e for e in payoff_events if e.kind == kinds[2])
    assert paid_off.outstanding_amount == 0


# The whole loan adds up


@pytest.mark.parametrize(
    ("principal", "rate_bps", "weeks", "paid_weeks", "days_after_start"),
    [
        (5_000_000, 1000, 50, 10, 72),  # the worked example
        (1_000_000, 1234, 7, 2, 15),  # I does not divide: J rounds
        (1_000_000, 1234, 7, 3, 200),  # after the last due date
        (999_999, 777, 13, 0, 1),
        (1_234_567, 2500, 9, 5, 40),
    ],
)
@pytest.mark.parametrize("setting", [WAIVE, FULL])
def test_the_parts_of_every_payment_add_up_to_p_and_i(
    stub, clock, principal, rate_bps, weeks, paid_weeks, days_after_start, setting
):
    loan = create_canonical_loan(
        stub,
        create_customer(stub),
        START,
        principal_amount=principal,
        interest_rate_bps=rate_bps,
        weeks=weeks,
        payoff_interest=setting,
        prepayment_policy=pb.PREPAYMENT_POLICY_WHOLE_INSTALLMENTS,
    )
    interest = loan.interest_amount
    paid = 0
    for line in loan.schedule[:paid_weeks]:
        clock.current = py_date(line.due_date)
        pay(stub, loan.id, line.amount)
        paid += line.amount
    on = START + days_after_start * DAY
    assert on >= clock.current
    clock.current = on

    want = expected_quote(principal, interest, weeks, START, paid, on, setting == WAIVE)
    q = quote(stub, loan.id)
    got = (q.payoff_amount, q.principal_amount, q.interest_amount, q.waived_interest_amount)
    assert got == want
    assert q.interest_amount >= 0 and q.principal_amount >= 0

    done = pay_off(stub, loan.id, q.payoff_amount)
    assert done.status == pb.LOAN_STATUS_PAID
    assert done.payment.outstanding_amount_after == 0
    assert list(done.payment.settled_week_numbers) == list(range(paid_weeks + 1, weeks + 1))
    payments = all_payments(stub, loan.id)
    assert sum(p.principal_amount for p in payments) == principal
    assert sum(p.interest_amount + p.waived_interest_amount for p in payments) == interest
    assert sum(p.amount for p in payments) == loan.total_amount - q.waived_interest_amount
    assert stub.GetOutstanding(api.GetOutstandingRequest(loan_id=loan.id)).outstanding_amount == 0
