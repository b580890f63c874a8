"""The decisions the services write, over random timelines (hypothesis): payments,
payoffs, reversals, write-offs and recoveries decided on the loan aggregate
(decide_payment, decide_payoff, decide_reversal, decide_write_off), with each
decision applied the way storage applies it. After every step the loan, its
payments and the events are compared with the brute-force walk of
tests/support/brute_force.py: A equals the live payments plus waivers, every
payment's weeks and split follow the live history, the stored status is the
oracle's at the business date, and no two events share a (kind, week, history
version) key, which the outbox's unique constraint would refuse. The journal
entries the decisions post balance one by one and add up, at every step, to the
balances the rules define from the loan's state (domain.journal.loan_balances)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import event, given, settings
from hypothesis import strategies as st

from loanbilling.domain.errors import DomainError
from loanbilling.domain.events import EventKind, NewEvent
from loanbilling.domain.history import decide_reversal
from loanbilling.domain.journal import (
    ACCOUNTS,
    Account,
    EntryKind,
    NewEntry,
    creation_entry,
    loan_balances,
)
from loanbilling.domain.loan import Loan, LoanStatus, PrepaymentPolicy
from loanbilling.domain.payment import Payment, PaymentKind, accepted_amounts, decide_payment
from loanbilling.domain.payoff import decide_payoff, payoff_quote
from loanbilling.domain.write_off import decide_write_off
from tests.unit.test_v2_properties import SETTINGS, brute, draw_date, v2_terms

DAY = dt.timedelta(days=1)


class Books:
    """One loan as storage would hold it, written only through the decisions."""

    def __init__(self, data, terms) -> None:
        self.data = data
        self.today = terms.start_date
        self.loan = Loan.new(1, 7, terms, self.today, None)
        self.payments: dict[int, Payment] = {}
        # What storage keeps beside each payment: A right after it (the seek of reads
        # at past dates), as the decisions give it.
        self.paid_after: dict[int, int] = {}
        self.events: list[NewEvent] = []
        self.entries: list[NewEntry] = [creation_entry(1, terms)]
        self.oracle = brute(terms)
        self.keys = 0

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def _new_id(self) -> int:
        return len(self.payments) + 1

    def _apply_payment(self, decision) -> None:
        payment = decision.payment
        self.payments[payment.id] = payment
        self.paid_after[payment.id] = decision.after.paid_amount
        self.loan = decision.after
        self.events += decision.events
        self.entries.append(decision.entry)
        self.oracle.pay(
            payment.id,
            payment.payment_date,
            payment.amount,
            payment.kind.value,
            payment.waived_interest_amount,
        )

    def pay(self) -> None:
        loan, data = self.loan, self.data
        on = draw_date(data, loan.last_payment_date or loan.terms.start_date, self.today)
        owed = loan.outstanding_amount
        if loan.write_off is not None:
            amount = data.draw(st.one_of(st.integers(1, max(owed, 1)), st.just(owed)))
        else:
            accepted = accepted_amounts(loan.terms, loan.paid_amount, on)
            amount = data.draw(st.sampled_from(accepted)) if accepted else 1
        try:
            decision = decide_payment(
                loan,
                amount=amount,
                payment_date=on,
                idempotency_key=self.key(),
                today=self.today,
                new_payment_id=self._new_id,
            )
        except DomainError:
            return
        expected_kind = PaymentKind.RECOVERY if loan.write_off else PaymentKind.REGULAR
        assert decision.payment.kind is expected_kind
        event(f"{expected_kind.value.lower()} payment")
        self._apply_payment(decision)

    def pay_off(self) -> None:
        loan = self.loan
        on = draw_date(self.data, loan.last_payment_date or loan.terms.start_date, self.today)
        try:
            quote = payoff_quote(
                loan.terms, loan.paid_amount, on, written_off_on=loan.written_off_on
            )
            decision = decide_payoff(
                loan,
                amount=quote.payoff_amount,
                payment_date=on,
                idempotency_key=self.key(),
                today=self.today,
                new_payment_id=self._new_id,
            )
        except DomainError:
            return
        assert decision.after.status is LoanStatus.PAID
        event("payoff")
        self._apply_payment(decision)

    def reverse(self) -> None:
        if not self.payments:
            return
        target = self.data.draw(st.sampled_from(sorted(self.payments)))
        on = draw_date(self.data, self.payments[target].payment_date, self.today)
        before = self.loan
        try:
            decision = decide_reversal(
                before,
                list(self.payments.values()),
                target,
                reason="bounced",
                reversal_date=on,
                idempotency_key=self.key(),
                today=self.today,
            )
        except DomainError:
            return
        assert decision.reversed.id == target and not decision.reversed.live
        assert decision.reversed.settled_week_numbers == []
        self.payments[target] = decision.reversed
        for moved in decision.reallocated:
            self.payments[moved.payment.id] = moved.payment
            self.paid_after[moved.payment.id] = moved.allocation.paid_amount_after
        self.loan = decision.after
        self.events += decision.events
        self.entries.append(decision.entry)
        self.oracle.reverse(target)
        kinds = [e.kind for e in decision.events]
        assert kinds[0] is EventKind.PAYMENT_REVERSED
        reopened = before.status is LoanStatus.PAID and self.loan.status is not LoanStatus.PAID
        assert (EventKind.LOAN_REOPENED in kinds) == reopened
        turned = before.status in (LoanStatus.ACTIVE, LoanStatus.PAID) and (
            self.loan.status is LoanStatus.DELINQUENT
        )
        assert (EventKind.LOAN_DELINQUENT in kinds) == turned
        event("reversal" + (" reopening" if reopened else ""))

    def write_off(self) -> None:
        loan = self.loan
        on = draw_date(self.data, loan.last_payment_date or loan.terms.start_date, self.today)
        try:
            decision = decide_write_off(
                loan, reason="gone", write_off_date=on, idempotency_key=self.key(), today=self.today
            )
        except DomainError:
            return
        write_off = decision.after.write_off
        assert (write_off.principal_amount, write_off.interest_amount) == self.oracle.write_off(on)
        self.loan = decision.after
        self.events += decision.events
        self.entries.append(decision.entry)
        event("write-off")

    def check(self, wrote: bool) -> None:
        loan, oracle = self.loan, self.oracle
        live = [p for p in self.payments.values() if p.live]
        assert loan.paid_amount == sum(p.amount + p.waived_interest_amount for p in live)
        assert loan.paid_amount == oracle.paid_at(dt.date.max)
        assert loan.last_payment_date == max((p.payment_date for p in live), default=None)
        view = oracle.view(self.today)
        assert loan.position(self.today).status.value == view.status
        if wrote:  # the stored status is the one at the business date of the last write
            assert loan.status.value == view.status
        walk = {s.id: s for s in oracle.live_allocation()}
        assert set(walk) == {p.id for p in live}
        for payment in live:
            expected = walk[payment.id]
            assert payment.settled_week_numbers == expected.weeks
            assert (payment.principal_amount, payment.interest_amount) == (
                expected.principal,
                expected.interest,
            )
            assert self.paid_after[payment.id] == expected.paid_after
        waived = sum(p.waived_interest_amount for p in live)
        expected = loan_balances(loan.terms, loan.paid_amount, waived, loan.write_off)
        posted = {a: sum(e.amounts[a] for e in self.entries) for a in ACCOUNTS}
        assert posted == expected
        assert all(sum(e.amounts.values()) == 0 for e in self.entries)
        for e in self.entries:
            # Two lines at least; an entry that moves nothing has none. That is a
            # write-off of a loan whose principal is all repaid (only interest
            # owed), or a payoff of 0 (all that was left is undue interest,
            # waived: the waiver posts nothing).
            payment = self.payments.get(e.payment_id)
            moves_nothing = e.kind is EntryKind.WRITE_OFF or (
                e.kind is EntryKind.PAYOFF and payment is not None and payment.amount == 0
            )
            assert len(e.lines) >= 2 or (moves_nothing and not e.lines)
            assert all((ln.debit_amount > 0) != (ln.credit_amount > 0) for ln in e.lines)
        if loan.write_off is not None:
            assert posted[Account.LOAN_PORTFOLIO] == 0
        keys = [(e.kind, e.week_number, e.history_version) for e in self.events]
        assert len(keys) == len(set(keys)), "two events share an outbox key"


OPERATIONS = ["pay"] * 5 + ["reverse"] * 3 + ["pay_off"] + ["write_off"]


@settings(SETTINGS, max_examples=300)
@given(st.data())
def test_random_lifecycle(data):
    terms = data.draw(v2_terms(max_weeks=data.draw(st.sampled_from([4, 12, 52]))))
    if data.draw(st.booleans()):
        terms = replace(terms, prepayment_policy=PrepaymentPolicy.WHOLE_INSTALLMENTS)
    books = Books(data, terms)
    for _ in range(data.draw(st.integers(1, 30))):
        books.today += DAY * data.draw(st.sampled_from([0, 1, 6, 7, 8, 30]))
        before = (books.loan, len(books.events))
        getattr(books, data.draw(st.sampled_from(OPERATIONS)))()
        books.check(wrote=(books.loan, len(books.events)) != before)
