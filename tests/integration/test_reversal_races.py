"""Reversals under contention, on SQLite, PostgreSQL (one-statement payments) and
PostgreSQL's portable path: many reversals of one payment, reversals racing
payments, payoffs and sweeps, a reversal racing a write-off, and recoveries
racing reversals of recoveries (rules v2, "Reversal", "Payoff", "Write-off and
recoveries").

The threads start together at a barrier; which of them wins a race is up to the
database, so the tests assert what must hold whatever the order: counts of
outcomes that the rules fix, and the loan's invariant checked from its rows
(tests/support/live_history.py), with the domain's re-allocation as the oracle.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from loanbilling.domain.errors import DomainError, FailedPrecondition, PaymentAmountRefused
from loanbilling.domain.loan import LoanStatus, PayoffInterest, PrepaymentPolicy
from loanbilling.domain.payment import PaymentKind
from loanbilling.domain.payoff import PayoffAmountRefused
from loanbilling.services.billing import BillingService, PaymentResult, WriteOffResult
from loanbilling.services.sweep import SweepReport, SweepService
from loanbilling.storage.database import make_engine
from loanbilling.storage.tables import events, payments
from loanbilling.storage.unit_of_work import sql_storage
from tests.conftest import START
from tests.integration.test_storage import canonical
from tests.support.live_history import assert_loan_consistent, read_books

WEEK = dt.timedelta(days=7)
DAY = dt.timedelta(days=1)
INSTALLMENT = 110_000  # of the canonical loan
REASON = "transfer bounced"


@pytest.fixture
def billing(billing, database_url):
    """conftest's `billing` (same database, write path and clock) on an engine whose
    pool waits up to 30 s for a connection instead of 3: dozens of threads share
    its 8 connections, and on a loaded 2-core machine a thread can queue for one
    longer than the production fail-fast allows. The races, not that wait, are
    under test; the connections stay 8."""
    patient = make_engine(database_url, pool_size=8, connect_timeout_s=30)
    yield BillingService(
        sql_storage(patient, one_statement=billing.storage.one_statement), billing.clock
    )
    patient.dispose()


def due(week: int) -> dt.date:
    return START + week * WEEK


def run_together(jobs: list[Callable[[], object]]) -> list[object]:
    """Runs every job on a thread of its own, all released at once by a barrier.
    Returns each job's result in order; a refusal of the rules (DomainError) is
    a job's result, any other exception fails the test."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], object]) -> object:
        barrier.wait(timeout=30)
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result(timeout=120) for f in futures]


def refusal_of(call: Callable[[], object]) -> object:
    """The call's result, or the rules' refusal it raised."""
    try:
        return call()
    except DomainError as refusal:
        return refusal


def reasons(outcomes) -> Counter:
    return Counter((type(o).__name__, o.reason) for o in outcomes if isinstance(o, DomainError))


def reversed_ids(engine, loan_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(payments.c.id)
                .where(payments.c.loan_id == loan_id, payments.c.reversal_date.is_not(None))
                .order_by(payments.c.id)
            ).scalars()
        )


def whole_installments_loan(billing, **overrides):
    return canonical(billing, prepayment_policy=PrepaymentPolicy.WHOLE_INSTALLMENTS, **overrides)


# 1. Many reversals of one payment.


@pytest.mark.parametrize("same_key", [True, False], ids=["one-key", "a-key-each"])
def test_64_reversals_of_one_payment(same_key, billing, engine, clock):
    """The worked example's p2, reversed by 64 callers at once: with one key,
    one reversal and 63 replays of it; with a key each, one reversal and 63
    PAYMENT_ALREADY_REVERSED. Either way one reversed row, and p3 settles week 2."""
    loan = canonical(billing)
    paid = []
    for week in (1, 2, 3):
        clock.current = due(week)
        paid.append(
            billing.make_payment(loan_id=loan.id, amount=INSTALLMENT, idempotency_key=f"p{week}")
        )
    p1, p2, p3 = (r.payment.id for r in paid)
    callers = 64

    def reverse(n: int) -> Callable[[], object]:
        key = "the-reversal" if same_key else f"reversal-{n}"
        return lambda: refusal_of(
            lambda: billing.reverse_payment(payment_id=p2, reason=REASON, idempotency_key=key)
        )

    outcomes = run_together([reverse(n) for n in range(callers)])
    done = [o for o in outcomes if isinstance(o, PaymentResult)]
    first = [o for o in done if not o.replayed]
    assert len(first) == 1, reasons(outcomes)
    (reversal,) = first
    assert reversal.payment.id == p2 and not reversal.payment.live
    assert reversal.payment.reversal.on == due(3)
    assert reversal.payment.reversal.outstanding_after == 5_500_000 - 2 * INSTALLMENT
    if same_key:
        assert len(done) == callers, reasons(outcomes)
        assert all(o.payment == reversal.payment for o in done)
    else:
        assert len(done) == 1
        assert reasons(outcomes) == {
            ("FailedPrecondition", "PAYMENT_ALREADY_REVERSED"): callers - 1
        }
        assert all(type(o) is FailedPrecondition for o in outcomes if o is not reversal)

    assert reversed_ids(engine, loan.id) == [p2]
    books = assert_loan_consistent(engine, loan.id, status_on=clock.current)
    assert books.paid_amount == 2 * INSTALLMENT
    assert [(p.id, p.first_week, p.last_week) for p in books.live] == [(p1, 1, 1), (p3, 2, 2)]
    assert len(books.events_of("PAYMENT_REVERSED")) == 1
    assert books.loan.history_version == 1


# 2. Reversals racing payments, payoffs and sweeps on one loan.


def test_reversals_racing_payments_payoffs_and_sweeps(billing, engine, clock):
    """A WHOLE_INSTALLMENTS, WAIVE_UNDUE canonical loan with six installments
    due and six paid, all on one business date. At once: every seed payment
    reversed twice (each once, the second refused), payers paying one or two
    installments and reversing some of their own payments, payoffs from a fresh
    quote (some reversed again), and sweeps. Refusals the races make legitimate
    are counted; afterwards the invariant holds on the rows."""
    loan = whole_installments_loan(billing, payoff_interest=PayoffInterest.WAIVE_UNDUE)
    today = clock.current = due(6) + DAY  # six installments fell due
    seeds = [
        billing.make_payment(
            loan_id=loan.id, amount=INSTALLMENT, idempotency_key=f"seed-{n}"
        ).payment.id
        for n in range(6)
    ]
    assert_loan_consistent(engine, loan.id, status_on=today)

    def reverse_seed(i: int):
        def job():
            return [
                (
                    "seed-reversal",
                    refusal_of(
                        lambda: billing.reverse_payment(
                            payment_id=seeds[i % len(seeds)],
                            reason=REASON,
                            idempotency_key=f"seed-reversal-{i}",
                        )
                    ),
                )
            ]

        return job

    def payer(n: int):
        def job():
            rng = random.Random(n)
            outcomes = []
            for attempt in range(3):
                amount = rng.choice((INSTALLMENT, 2 * INSTALLMENT))
                paid = refusal_of(
                    lambda amount=amount, attempt=attempt: billing.make_payment(
                        loan_id=loan.id, amount=amount, idempotency_key=f"pay-{n}-{attempt}"
                    )
                )
                outcomes.append(("payment", paid))
                if isinstance(paid, PaymentResult) and rng.random() < 0.5:
                    outcomes.append(
                        (
                            "own-reversal",
                            refusal_of(
                                lambda paid=paid, attempt=attempt: billing.reverse_payment(
                                    payment_id=paid.payment.id,
                                    reason=REASON,
                                    idempotency_key=f"pay-{n}-{attempt}-reversal",
                                )
                            ),
                        )
                    )
            return outcomes

        return job

    def payer_off(n: int):
        def job():
            outcomes = []
            for attempt in range(2):
                quote = refusal_of(lambda: billing.get_payoff_quote(loan_id=loan.id))
                outcomes.append(("quote", quote))
                if isinstance(quote, DomainError):
                    continue
                paid = refusal_of(
                    lambda quote=quote, attempt=attempt: billing.pay_off_loan(
                        loan_id=loan.id,
                        amount=quote.payoff_amount,
                        idempotency_key=f"payoff-{n}-{attempt}",
                    )
                )
                outcomes.append(("payoff", paid))
                if isinstance(paid, PaymentResult) and n == 0:
                    outcomes.append(
                        (
                            "own-reversal",
                            refusal_of(
                                lambda paid=paid, attempt=attempt: billing.reverse_payment(
                                    payment_id=paid.payment.id,
                                    reason="payoff keyed to the wrong loan",
                                    idempotency_key=f"payoff-{n}-{attempt}-reversal",
                                )
                            ),
                        )
                    )
            return outcomes

        return job

    def sweeper():
        sweep = SweepService(billing.storage, clock, batch_size=1)
        return [("sweep", sweep.run()) for _ in range(3)]

    jobs = [
        *(reverse_seed(i) for i in range(2 * len(seeds))),
        *(payer(n) for n in range(8)),
        *(payer_off(n) for n in range(2)),
        sweeper,
        sweeper,
    ]
    outcomes = [o for per_job in run_together(jobs) for o in per_job]
    by_op: dict[str, list[object]] = {}
    for op, outcome in outcomes:
        by_op.setdefault(op, []).append(outcome)

    # Each seed reversed exactly once, whoever came first; the second refused.
    seed_reversals = by_op["seed-reversal"]
    assert sorted(o.payment.id for o in seed_reversals if isinstance(o, PaymentResult)) == seeds
    assert reasons(seed_reversals) == {
        ("FailedPrecondition", "PAYMENT_ALREADY_REVERSED"): len(seeds)
    }
    # A caller reversing its own payment has no rival: always done.
    own = by_op.get("own-reversal", [])
    assert all(isinstance(o, PaymentResult) and not o.replayed for o in own), reasons(own)
    # A payment loses only to a loan paid up meanwhile: the amount of two
    # installments with one left, or nothing payable at all.
    paid = by_op["payment"]
    assert set(reasons(paid)) <= {
        ("PaymentAmountRefused", PaymentAmountRefused.reason),
        ("FailedPrecondition", "LOAN_FULLY_PAID"),
    }, reasons(paid)
    assert all(
        isinstance(o, PaymentAmountRefused | FailedPrecondition | PaymentResult) for o in paid
    )
    # A payoff loses only to a change of its quote, or to a loan paid meanwhile.
    quotes, payoffs = by_op["quote"], by_op.get("payoff", [])
    assert set(reasons(quotes)) <= {("FailedPrecondition", "LOAN_FULLY_PAID")}
    assert set(reasons(payoffs)) <= {
        ("PayoffAmountRefused", PayoffAmountRefused.reason),
        ("FailedPrecondition", "LOAN_FULLY_PAID"),
    }, reasons(payoffs)
    assert all(isinstance(o, SweepReport) for o in by_op["sweep"])

    accepted = [o for o in paid + payoffs if isinstance(o, PaymentResult)]
    assert not any(o.replayed for o in accepted)
    assert all(
        o.payment.kind is PaymentKind.PAYOFF for o in payoffs if isinstance(o, PaymentResult)
    )
    reversals = [o for o in seed_reversals + own if isinstance(o, PaymentResult)]

    SweepService(billing.storage, clock).run()  # the stored status is then today's exactly
    books = assert_loan_consistent(engine, loan.id, status_on=today)
    assert len(books.live) + len(books.reversed) == len(seeds) + len(accepted)
    assert sorted(p.id for p in books.reversed) == sorted(o.payment.id for o in reversals)
    assert books.loan.history_version == len(reversals)
    assert len(books.reversed) >= len(seeds)


# 3. A reversal racing a write-off.


def test_a_reversal_racing_a_write_off(billing, engine, clock):
    """Per round, a fresh loan with three installments paid; at once: p2 and p3
    reversed, the loan written off, and one more installment paid. The write-off
    always succeeds; each reversal either came first or is refused
    LOAN_WRITTEN_OFF (a payment before a write-off is never reversed after it, so
    the amounts written off never change); the payment is regular before the
    write-off and a recovery after it. Afterwards the recovery, if any, can be
    reversed, a regular payment cannot."""
    rounds = 6
    today = clock.current = due(3)
    orders = Counter()
    for r in range(rounds):
        loan = whole_installments_loan(billing)
        p1, p2, p3 = (
            billing.make_payment(
                loan_id=loan.id, amount=INSTALLMENT, idempotency_key=f"r{r}-p{n}"
            ).payment.id
            for n in (1, 2, 3)
        )

        def reverse(payment_id: int, r: int = r):
            return lambda: refusal_of(
                lambda: billing.reverse_payment(
                    payment_id=payment_id, reason=REASON, idempotency_key=f"r{r}-rev-{payment_id}"
                )
            )

        def write_off(loan_id: int = loan.id, r: int = r):
            return refusal_of(
                lambda: billing.write_off_loan(
                    loan_id=loan_id, reason="borrower absconded", idempotency_key=f"r{r}-wo"
                )
            )

        def pay(loan_id: int = loan.id, r: int = r):
            return refusal_of(
                lambda: billing.make_payment(
                    loan_id=loan_id, amount=INSTALLMENT, idempotency_key=f"r{r}-p4"
                )
            )

        rev2, rev3, wrote, paid = run_together([reverse(p2), reverse(p3), write_off, pay])
        assert isinstance(wrote, WriteOffResult) and not wrote.replayed, wrote
        assert wrote.loan.loan.status is LoanStatus.WRITTEN_OFF
        assert isinstance(paid, PaymentResult) and not paid.replayed, paid
        for outcome in (rev2, rev3):
            assert isinstance(outcome, PaymentResult) or (
                type(outcome) is FailedPrecondition and outcome.reason == "LOAN_WRITTEN_OFF"
            ), outcome
        done = [o.payment.id for o in (rev2, rev3) if isinstance(o, PaymentResult)]
        orders[(len(done), paid.payment.kind.value)] += 1

        books = assert_loan_consistent(engine, loan.id, status_on=today)
        assert sorted(p.id for p in books.reversed) == done
        # What the write-off answered is what it stored, and what the rows imply.
        write_off_record = wrote.loan.loan.write_off
        assert (
            write_off_record.principal_amount,
            write_off_record.interest_amount,
        ) == (
            books.loan.written_off_principal_amount,
            books.loan.written_off_interest_amount,
        )
        regular_before = [
            p
            for p in books.live
            if p.kind != PaymentKind.RECOVERY.value and p.id != paid.payment.id
        ]
        assert {p.id for p in regular_before} == {p1, p2, p3} - set(done)

        # After the race: only a recovery can still be reversed.
        for payment_id in {p.id for p in books.live if p.kind != PaymentKind.RECOVERY.value}:
            refused = refusal_of(
                lambda payment_id=payment_id, r=r: billing.reverse_payment(
                    payment_id=payment_id, reason=REASON, idempotency_key=f"r{r}-late-{payment_id}"
                )
            )
            assert type(refused) is FailedPrecondition and refused.reason == "LOAN_WRITTEN_OFF"
        if paid.payment.kind is PaymentKind.RECOVERY:
            undone = billing.reverse_payment(
                payment_id=paid.payment.id, reason=REASON, idempotency_key=f"r{r}-late-recovery"
            )
            assert not undone.replayed and undone.payment.reversal.status_after is (
                LoanStatus.WRITTEN_OFF
            )
        assert_loan_consistent(engine, loan.id, status_on=today)
    assert sum(orders.values()) == rounds


# 4. Recoveries racing reversals of recoveries on a written-off loan.


def test_recoveries_racing_reversals_of_recoveries(billing, engine, clock):
    """A written-off loan with four small recoveries (partial installments). At
    once: each recovery reversed twice (once done, once refused), recoverers
    paying amounts of 1 to 120,000 and reversing some of their own, and a sweep,
    which writes nothing for a written-off loan."""
    loan = whole_installments_loan(billing)
    today = clock.current = due(4) + DAY
    for n in range(2):
        billing.make_payment(loan_id=loan.id, amount=INSTALLMENT, idempotency_key=f"before-{n}")
    billing.write_off_loan(loan_id=loan.id, reason="borrower absconded", idempotency_key="wo")
    seeds = [
        billing.make_payment(
            loan_id=loan.id, amount=amount, idempotency_key=f"seed-{amount}"
        ).payment.id
        for amount in (1, 7, 50_000, 109_999)
    ]
    with engine.connect() as conn:
        events_before = conn.execute(select(func.max(events.c.id))).scalar_one()

    def reverse_seed(i: int):
        return lambda: [
            (
                "seed-reversal",
                refusal_of(
                    lambda: billing.reverse_payment(
                        payment_id=seeds[i % len(seeds)],
                        reason=REASON,
                        idempotency_key=f"seed-reversal-{i}",
                    )
                ),
            )
        ]

    def recoverer(n: int):
        def job():
            rng = random.Random(100 + n)
            outcomes = []
            for attempt in range(3):
                amount = rng.randint(1, 120_000)
                got = refusal_of(
                    lambda amount=amount, attempt=attempt: billing.make_payment(
                        loan_id=loan.id, amount=amount, idempotency_key=f"rec-{n}-{attempt}"
                    )
                )
                outcomes.append(("recovery", got))
                if isinstance(got, PaymentResult) and rng.random() < 0.5:
                    outcomes.append(
                        (
                            "own-reversal",
                            refusal_of(
                                lambda got=got, attempt=attempt: billing.reverse_payment(
                                    payment_id=got.payment.id,
                                    reason=REASON,
                                    idempotency_key=f"rec-{n}-{attempt}-reversal",
                                )
                            ),
                        )
                    )
            return outcomes

        return job

    def sweeper():
        return [("sweep", SweepService(billing.storage, clock).run()) for _ in range(2)]

    jobs = [*(reverse_seed(i) for i in range(2 * len(seeds))), *(recoverer(n) for n in range(6))]
    jobs.append(sweeper)
    outcomes = [o for per_job in run_together(jobs) for o in per_job]
    by_op: dict[str, list[object]] = {}
    for op, outcome in outcomes:
        by_op.setdefault(op, []).append(outcome)

    seed_reversals = by_op["seed-reversal"]
    assert sorted(o.payment.id for o in seed_reversals if isinstance(o, PaymentResult)) == seeds
    assert reasons(seed_reversals) == {
        ("FailedPrecondition", "PAYMENT_ALREADY_REVERSED"): len(seeds)
    }
    # Far below the outstanding, every recovery is accepted, and every reversal
    # of one's own recovery done.
    recoveries = by_op["recovery"]
    assert all(isinstance(o, PaymentResult) for o in recoveries), reasons(recoveries)
    assert all(o.payment.kind is PaymentKind.RECOVERY for o in recoveries)
    own = by_op.get("own-reversal", [])
    assert all(isinstance(o, PaymentResult) for o in own), reasons(own)
    assert all(o.loans_checked == 0 and o.events_written == 0 for o in by_op["sweep"]), by_op[
        "sweep"
    ]

    books = assert_loan_consistent(engine, loan.id, status_on=today)
    reversals = [o for o in seed_reversals + own if isinstance(o, PaymentResult)]
    assert sorted(p.id for p in books.reversed) == sorted(o.payment.id for o in reversals)
    assert len(books.live) + len(books.reversed) == 2 + len(seeds) + len(recoveries)
    assert books.loan.status == LoanStatus.WRITTEN_OFF.value
    # The sweep wrote nothing for the written-off loan: only payments and reversals did.
    later = {e.kind for e in books.events if e.id > events_before}
    assert later <= {"PAYMENT_RECEIVED", "PAYMENT_REVERSED", "LOAN_PAID_OFF"}, later


def test_reversing_a_recovery_moves_the_paid_amount_after_of_later_ones(billing, engine, clock):
    """Recoveries of 1 (r1), 50,000 (r2) and 7 (r3) on three days; reversing r1
    leaves r2's weeks (none) and split as they were, but A after r2 falls from
    50,001 to 50,000 ("the payment stops counting at every date")."""
    loan = whole_installments_loan(billing)
    clock.current = START + 10 * DAY
    billing.write_off_loan(loan_id=loan.id, reason="borrower absconded", idempotency_key="wo")
    ids = []
    for day, amount in ((20, 1), (22, 50_000), (25, 7)):
        clock.current = START + day * DAY
        ids.append(
            billing.make_payment(
                loan_id=loan.id, amount=amount, idempotency_key=f"r{day}"
            ).payment.id
        )
    billing.reverse_payment(payment_id=ids[0], reason=REASON, idempotency_key="undo-r1")
    assert billing.get_position(loan.id).position.paid_amount == 50_007
    # Between r2 and r3: A is r2 alone.
    at_23 = billing.get_position(loan.id, as_of=START + 23 * DAY).position
    assert (at_23.paid_amount, at_23.outstanding_amount) == (50_000, 5_500_000 - 50_000)
    assert_loan_consistent(engine, loan.id)
    books = read_books(engine, loan.id)
    assert [p.paid_amount_after for p in books.live] == [50_000, 50_007]
