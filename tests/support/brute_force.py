"""A brute-force reading of the billing rules v2 (shared/spec/billing-rules.md), for tests.

It walks the schedule installment by installment and keeps its own ledger of
transactions, so that the domain's O(1) arithmetic on the paid amount `A` has
something independent to be compared with. It imports nothing of the project:
amounts are built from the raw loan inputs, the paid amount is allocated
oldest first over the installments one by one, and every figure is read off
that allocation with loops. Integers only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

WEEK = dt.timedelta(days=7)

REGULAR, PAYOFF, RECOVERY = "REGULAR", "PAYOFF", "RECOVERY"
ACTIVE, DELINQUENT, PAID, WRITTEN_OFF = "ACTIVE", "DELINQUENT", "PAID", "WRITTEN_OFF"


@dataclass
class Txn:
    """A payment in the oracle's ledger."""

    id: int
    date: dt.date
    amount: int
    kind: str = REGULAR
    waived: int = 0
    live: bool = True


@dataclass(frozen=True)
class Quote:
    amount: int
    principal: int
    interest: int
    waived: int


@dataclass(frozen=True)
class Settled:
    """A live payment as the walk allocates it."""

    id: int
    weeks: list[int]  # installments this payment made fully covered
    principal: int
    interest: int
    paid_after: int


@dataclass(frozen=True)
class View:
    """The loan at the end of a date, read off the allocation."""

    on: dt.date
    paid_amount: int
    covered: list[int]  # per installment (index k - 1): how much of it is covered
    fully: list[int]  # week numbers fully covered
    partly: list[int]  # week numbers covered in part only
    due_before: int
    current: int | None  # the first installment due on or after `on`
    overdue: list[int]
    overdue_amount: int
    days_past_due: int
    outstanding: int
    outstanding_interest: int
    outstanding_principal: int
    status: str
    next_week: int | None
    installment_status: list[str]  # per installment: PAID / OVERDUE / UNPAID
    accepted_due_only: list[int]
    accepted_whole: list[int]
    payoff_full: Quote | str  # a quote, or the reason it is refused
    payoff_waive_undue: Quote | str

    @property
    def missed(self) -> int:
        return len(self.overdue)


@dataclass
class BruteLoan:
    principal: int
    rate_bps: int
    weeks: int
    start: dt.date
    threshold: int = 2
    whole_installments: bool = False
    waive_undue: bool = False
    txns: list[Txn] = field(default_factory=list)
    written_off_on: dt.date | None = None

    def __post_init__(self) -> None:
        # Interest rounded half up: the long-hand division.
        quotient, remainder = divmod(self.principal * self.rate_bps, 10_000)
        self.interest = quotient + (1 if 2 * remainder >= 10_000 else 0)
        self.total = self.principal + self.interest
        base = self.total // self.weeks
        assert base > 0
        self.amounts = [base] * (self.weeks - 1) + [self.total - base * (self.weeks - 1)]
        self.due: list[dt.date] = []
        day = self.start
        for _ in range(self.weeks):
            day += WEEK
            self.due.append(day)
        # each installment's interest portion: J of the cumulative, by differences
        self.portion_interest: list[int] = []
        cum = 0
        for amount in self.amounts:
            self.portion_interest.append(self._j(cum + amount) - self._j(cum))
            cum += amount

    # --- the J rule, and the allocation walk -------------------------------------

    def _j(self, x: int) -> int:
        return self.interest * x // self.total

    def allocation(self, paid_amount: int) -> list[int]:
        """How much of each installment `paid_amount` covers, oldest first."""
        left = paid_amount
        covered = []
        for amount in self.amounts:
            take = min(amount, left)
            covered.append(take)
            left -= take
        assert left == 0, "paid more than the total"
        return covered

    def interest_recognised(self, paid_amount: int) -> int:
        """Interest part of `paid_amount`: installment by installment, the J rule on
        the part of each that is covered."""
        interest = 0
        before = 0
        for amount, covered in zip(self.amounts, self.allocation(paid_amount), strict=True):
            if covered == 0:
                break
            interest += self._j(before + covered) - self._j(before)
            before += amount
        return interest

    def cum(self, k: int) -> int:
        return sum(self.amounts[:k])

    # --- ledger -------------------------------------------------------------------

    def pay(self, txn_id: int, date: dt.date, amount: int, kind: str = REGULAR, waived: int = 0):
        self.txns.append(Txn(txn_id, date, amount, kind, waived))

    def reverse(self, txn_id: int) -> None:
        (txn,) = [t for t in self.txns if t.id == txn_id]
        assert txn.live
        txn.live = False

    def write_off(self, date: dt.date) -> tuple[int, int]:
        """Records a write-off; returns (principal, interest) written off."""
        assert self.written_off_on is None
        paid = self.paid_at(date)
        self.written_off_on = date
        interest_paid = self.interest_recognised(paid)
        return self.principal - (paid - interest_paid), self.interest - interest_paid

    def paid_at(self, on: dt.date) -> int:
        paid = 0
        for txn in self.txns:
            if txn.live and txn.date <= on:
                paid += txn.amount + txn.waived
        return paid

    def live_allocation(self) -> list[Settled]:
        """Every live payment, oldest first, with the weeks it made fully covered and
        its split (interest: the J rule's interest on the move, less any waiver,
        never below 0)."""
        out = []
        paid = 0
        before = self.allocation(0)
        interest_before = 0
        for txn in sorted((t for t in self.txns if t.live), key=lambda t: (t.date, t.id)):
            after_paid = paid + txn.amount + txn.waived
            after = self.allocation(after_paid)
            weeks = [
                k + 1
                for k in range(self.weeks)
                if before[k] < self.amounts[k] and after[k] == self.amounts[k]
            ]
            interest_after = self.interest_recognised(after_paid)
            interest = max(interest_after - interest_before - txn.waived, 0)
            out.append(Settled(txn.id, weeks, txn.amount - interest, interest, after_paid))
            paid, before, interest_before = after_paid, after, interest_after
        return out

    # --- reads --------------------------------------------------------------------

    def view(self, on: dt.date, paid_amount: int | None = None) -> View:
        paid = self.paid_at(on) if paid_amount is None else paid_amount
        covered = self.allocation(paid)
        weeks = range(1, self.weeks + 1)
        fully = [k for k in weeks if covered[k - 1] == self.amounts[k - 1]]
        partly = [k for k in weeks if 0 < covered[k - 1] < self.amounts[k - 1]]
        due_before = sum(1 for d in self.due if d < on)
        current = next((k for k in weeks if self.due[k - 1] >= on), None)
        full = set(fully)
        overdue = [k for k in weeks if k not in full and self.due[k - 1] < on]
        overdue_amount = sum(self.amounts[k - 1] - covered[k - 1] for k in overdue)
        days_past_due = (on - self.due[overdue[0] - 1]).days if overdue else 0
        outstanding = sum(a - c for a, c in zip(self.amounts, covered, strict=True))
        interest_paid = self.interest_recognised(paid)
        if self.written_off_on is not None and self.written_off_on <= on:
            status = WRITTEN_OFF
        elif paid >= self.total:
            status = PAID
        elif len(overdue) >= self.threshold:
            status = DELINQUENT
        else:
            status = ACTIVE
        unpaid = [k for k in weeks if k not in full]
        late = set(overdue)
        payable_due_only = [k for k in unpaid if current is None or k <= current]
        return View(
            on=on,
            paid_amount=paid,
            covered=covered,
            fully=fully,
            partly=partly,
            due_before=due_before,
            current=current,
            overdue=overdue,
            overdue_amount=overdue_amount,
            days_past_due=days_past_due,
            outstanding=outstanding,
            outstanding_interest=self.interest - interest_paid,
            outstanding_principal=self.principal - (paid - interest_paid),
            status=status,
            next_week=unpaid[0] if unpaid else None,
            installment_status=[
                "PAID" if k in full else "OVERDUE" if k in late else "UNPAID" for k in weeks
            ],
            accepted_due_only=self._running_remainders(payable_due_only, covered),
            accepted_whole=self._running_remainders(unpaid, covered),
            payoff_full=self._quote(on, paid, status, waive=False),
            payoff_waive_undue=self._quote(on, paid, status, waive=True),
        )

    def _running_remainders(self, weeks: list[int], covered: list[int]) -> list[int]:
        out, running = [], 0
        for k in weeks:
            running += self.amounts[k - 1] - covered[k - 1]
            out.append(running)
        return out

    def _quote(self, on: dt.date, paid: int, status: str, *, waive: bool) -> Quote | str:
        if on < self.start:
            return "DATE_BEFORE_LOAN_START"
        if status == WRITTEN_OFF:
            return "LOAN_WRITTEN_OFF"
        if status == PAID:
            return "LOAN_FULLY_PAID"
        interest_paid = self.interest_recognised(paid)
        waived = 0
        if waive:
            # the interest of the installments up to the current one (or all) is owed
            j = next((k for k in range(1, self.weeks + 1) if self.due[k - 1] >= on), self.weeks)
            interest_due = sum(self.portion_interest[:j])
            waived = self.interest - max(interest_due, interest_paid)
        amount = self.total - paid - waived
        principal = self.principal - (paid - interest_paid)
        return Quote(amount, principal, amount - principal, waived)
