"""The journal on SQLite and PostgreSQL (both write paths): every movement posts its
balanced entry in its own transaction, the books reconcile with the loans after
any sequence of loans, payments, payoffs, reversals, write-offs and recoveries
(hypothesis), the trial balance balances at every date and equals the entries
it summarises, entries cannot be changed, and the trial balance is read from
the maintained totals' index."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text, update

from loanbilling.domain.errors import DomainError
from loanbilling.domain.journal import ACCOUNTS, Account, EntryKind
from loanbilling.domain.loan import PayoffInterest, PrepaymentPolicy
from loanbilling.domain.payment import accepted_amounts
from loanbilling.services.billing import BillingService
from loanbilling.services.ledger import LedgerService
from loanbilling.storage.journal import TRIAL_BALANCE
from loanbilling.storage.posting import COLUMN
from loanbilling.storage.tables import journal_entries, ledger_totals, loans
from loanbilling.storage.unit_of_work import sql_storage
from tests.conftest import START
from tests.support.api import new_key
from tests.support.generated_loans import empty_database

DAY = dt.timedelta(days=1)
WEEK = 7 * DAY


@pytest.fixture
def ledger(storage, clock):
    return LedgerService(storage, clock)


def canonical(billing, **settings):
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    return billing.create_loan(
        customer_id=customer.id,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=START,
        request_id=new_key("loan"),
        **settings,
    ).loan


def balances(trial) -> dict[Account, int]:
    return {line.account: line.balance for line in trial.lines}


def test_the_canonical_loan_paid_in_full(billing, ledger, clock):
    loan = canonical(billing)
    for week in range(1, 51):
        clock.current = START + week * WEEK
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key=f"w{week}")
    trial = ledger.trial_balance()
    # CASH +500,000 net, INTEREST_INCOME 500,000, LOAN_PORTFOLIO 0.
    assert balances(trial) == {
        Account.LOAN_PORTFOLIO: 0,
        Account.CASH: 500_000,
        Account.INTEREST_INCOME: 500_000,
        Account.WRITE_OFF_EXPENSE: 0,
        Account.RECOVERY_INCOME: 0,
    }
    assert trial.debit_total == trial.credit_total == 5_000_000 + 5_500_000
    # At the start only the disbursement is posted; after week 10, ten payments.
    assert balances(ledger.trial_balance(START))[Account.CASH] == -5_000_000
    tenth = ledger.trial_balance(START + 10 * WEEK)
    assert balances(tenth)[Account.LOAN_PORTFOLIO] == 4_000_000
    assert balances(tenth)[Account.INTEREST_INCOME] == 100_000
    entries = ledger.list_entries(loan_id=loan.id, page_size=1000).items
    assert [e.kind for e in entries] == [EntryKind.LOAN_CREATED] + [EntryKind.PAYMENT] * 50
    assert ledger.verify_books().agree


def test_each_movement_posts_in_its_transaction(billing, ledger, engine, clock):
    """A refused movement posts nothing; each accepted one posts one entry."""
    loan = canonical(billing)
    clock.current = START + 3 * WEEK

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(journal_entries)).scalar_one()

    assert count() == 1
    with pytest.raises(DomainError):
        billing.make_payment(loan_id=loan.id, amount=1, idempotency_key="bad")
    assert count() == 1
    paid = billing.make_payment(loan_id=loan.id, amount=220_000, idempotency_key="two")
    billing.make_payment(loan_id=loan.id, amount=220_000, idempotency_key="two")  # a replay
    assert count() == 2
    billing.reverse_payment(payment_id=paid.payment.id, reason="bounced", idempotency_key="r")
    billing.reverse_payment(payment_id=paid.payment.id, reason="bounced", idempotency_key="r")
    billing.write_off_loan(loan_id=loan.id, reason="gone", idempotency_key="w")
    billing.make_payment(loan_id=loan.id, amount=12_345, idempotency_key="rec")
    kinds = [e.kind for e in ledger.list_entries(loan_id=loan.id).items]
    assert kinds == [
        EntryKind.LOAN_CREATED,
        EntryKind.PAYMENT,
        EntryKind.REVERSAL,
        EntryKind.WRITE_OFF,
        EntryKind.RECOVERY,
    ]
    report = ledger.verify_books()
    assert (report.loans_checked, report.differences) == (1, [])


def test_a_payoff_of_nothing_but_waived_interest_posts_an_empty_entry(billing, ledger, clock):
    """1 lent at 50 % over 2 weeks: week 1 (1) repays the principal, week 2 is all
    interest. A payoff on the start date waives that interest (undue) and costs
    0: the loan is paid, its entry moves nothing, and the books agree."""
    customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
    loan = billing.create_loan(
        customer_id=customer.id,
        principal_amount=1,
        interest_rate_bps=5000,
        weeks=2,
        start_date=START,
        payoff_interest=PayoffInterest.WAIVE_UNDUE,
        request_id=new_key("loan"),
    ).loan
    clock.current = START
    billing.make_payment(loan_id=loan.id, amount=1, idempotency_key="week-1")
    quote = billing.get_payoff_quote(loan_id=loan.id)
    assert (quote.payoff_amount, quote.waived_interest_amount) == (0, 1)
    payoff = billing.pay_off_loan(loan_id=loan.id, amount=0, idempotency_key="off")
    assert payoff.payment.status_after.value == "PAID"
    entries = ledger.list_entries(loan_id=loan.id).items
    assert [(e.kind, e.lines) for e in entries][-1] == (EntryKind.PAYOFF, [])
    assert ledger.verify_books().agree


def test_entries_are_immutable(billing, engine):
    canonical(billing)
    for statement in (
        update(journal_entries).values(cash=0),
        journal_entries.delete(),
    ):
        with pytest.raises(Exception, match="immutable"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(select(journal_entries.c.cash)).scalars().all() == [-5_000_000]


def test_verify_books_finds_a_tampered_state(billing, ledger, engine, clock):
    loan = canonical(billing)
    clock.current = START + WEEK
    billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="one")
    with engine.begin() as conn:  # a state changed behind the books' back
        conn.execute(update(loans).where(loans.c.id == loan.id).values(paid_amount=220_000))
    report = ledger.verify_books()
    assert not report.agree
    assert {d.account for d in report.differences} == {
        Account.LOAN_PORTFOLIO,
        Account.CASH,
        Account.INTEREST_INCOME,
    }
    cash = next(d for d in report.differences if d.account is Account.CASH)
    assert (cash.loan_id, cash.expected, cash.posted) == (loan.id, -4_780_000, -4_890_000)
    with engine.begin() as conn:  # and maintained totals that drifted from the entries
        conn.execute(update(loans).where(loans.c.id == loan.id).values(paid_amount=110_000))
        conn.execute(
            update(ledger_totals)
            .where(ledger_totals.c.entry_date == START)
            .values(cash_debit=ledger_totals.c.cash_debit + 1)
        )
    (drift,) = ledger.verify_books().differences
    assert (drift.loan_id, drift.account, drift.currency_code) == (0, Account.CASH, "IDR")
    assert drift.posted - drift.expected == 1


def test_a_trial_balance_names_one_currency(billing, ledger, clock):
    canonical(billing)
    assert ledger.trial_balance().currency_code == "IDR"
    canonical(billing, currency_code="USD")
    with pytest.raises(DomainError, match="IDR, USD"):
        ledger.trial_balance()
    usd = ledger.trial_balance(currency_code="USD")
    assert balances(usd)[Account.LOAN_PORTFOLIO] == 5_000_000
    # Before any loan started: no entries, nothing to choose between.
    assert ledger.trial_balance(START - DAY).debit_total == 0


def test_the_trial_balance_reads_the_maintained_totals_index(billing, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    canonical(billing)
    query = TRIAL_BALANCE.params(currency_code="IDR", as_of=START + 400 * WEEK)
    with engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
        assert "Seq Scan" not in plan and "ledger_totals" in plan, plan
        assert "journal_entries" not in plan
        conn.rollback()


OPERATIONS = ["pay"] * 4 + ["reverse"] * 2 + ["pay_off", "write_off", "new_loan"]


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_history_reconciles(billing, ledger, engine, clock, data):
    """Random loans and movements through the service: the books agree with every
    loan after each step, and the trial balance balances at every date and
    equals the sums of the entries dated by then."""
    empty_database(engine)
    clock.current = START
    loan_ids = [canonical(billing).id]
    keys = iter(range(1, 10_000))
    for _ in range(data.draw(st.integers(3, 12))):
        clock.current += data.draw(st.sampled_from([0, 1, 7, 8, 20])) * DAY
        operation = data.draw(st.sampled_from(OPERATIONS))
        loan_id = data.draw(st.sampled_from(loan_ids))
        key = f"k{next(keys)}"
        try:
            if operation == "new_loan":
                settings_ = data.draw(
                    st.sampled_from(
                        [
                            {},
                            {"payoff_interest": PayoffInterest.WAIVE_UNDUE},
                            {"prepayment_policy": PrepaymentPolicy.WHOLE_INSTALLMENTS},
                        ]
                    )
                )
                loan_ids.append(canonical(billing, **settings_).id)
            elif operation == "pay":
                loan = billing.get_loan(loan_id).loan
                if loan.write_off is not None:
                    amount = data.draw(st.integers(1, max(loan.outstanding_amount, 1)))
                else:
                    accepted = accepted_amounts(loan.terms, loan.paid_amount, clock.current)
                    amount = data.draw(st.sampled_from(accepted)) if accepted else 1
                billing.make_payment(loan_id=loan_id, amount=amount, idempotency_key=key)
            elif operation == "pay_off":
                quote = billing.get_payoff_quote(loan_id=loan_id)
                billing.pay_off_loan(
                    loan_id=loan_id, amount=quote.payoff_amount, idempotency_key=key
                )
            elif operation == "reverse":
                payments = billing.list_payments(loan_id=loan_id).items
                if not payments:
                    continue
                target = data.draw(st.sampled_from(payments))
                billing.reverse_payment(payment_id=target.id, reason="bounced", idempotency_key=key)
            else:
                billing.write_off_loan(loan_id=loan_id, reason="gone", idempotency_key=key)
        except DomainError:
            continue
        report = ledger.verify_books()
        assert report.differences == [], operation
    with engine.connect() as conn:
        dates = sorted(conn.execute(select(journal_entries.c.entry_date).distinct()).scalars())
        for on in [*dates, clock.current]:
            trial = ledger.trial_balance(on)
            assert trial.debit_total == trial.credit_total
            sums = conn.execute(
                select(
                    *(func.coalesce(func.sum(journal_entries.c[COLUMN[a]]), 0) for a in ACCOUNTS)
                ).where(journal_entries.c.entry_date <= on)
            ).one()
            assert [line.debit_total - line.credit_total for line in trial.lines] == list(sums)


def test_a_payment_during_reconciliation_is_no_difference(billing, ledger, engine, clock):
    """A payment that commits between VerifyBooks' read of the loans and its read of
    their entries: the reconciliation reads one snapshot, so it sees the payment
    in both or in neither."""
    loan = canonical(billing)
    clock.current = START + 2 * WEEK
    rival = BillingService(sql_storage(engine), clock)
    paid = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "FROM journal_entries" in statement and "GROUP BY" in statement and not paid:
            paid.append(rival.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="p"))

    event.listen(engine, "before_cursor_execute", before)
    try:
        report = ledger.verify_books()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert paid
    assert (report.loans_checked, report.differences) == (1, [])
    assert ledger.verify_books().agree
