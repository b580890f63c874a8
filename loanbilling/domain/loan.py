"""Loan terms, the repayment schedule, the loan aggregate and its position at a date.

A loan's whole repayment state is one number, the paid amount `A` (rules v2):
the sum of its live payments. Allocation is oldest first on the cumulative
amount, so the covered installments are always weeks 1..c(A) and installment
c(A) + 1 may be partly covered. Every figure below is O(1) arithmetic on `A`.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Container
from dataclasses import dataclass, replace

from loanbilling.domain.errors import AlreadyExists, InvalidArgument, OutOfRange, Refusals

INT64_MAX = 2**63 - 1
BPS_DENOMINATOR = 10_000
MAX_WEEKS = 520
MAX_RATE_BPS = 100_000
DEFAULT_DELINQUENCY_THRESHOLD = 2
DEFAULT_CURRENCY = "IDR"
DAYS_PER_WEEK = 7
CURRENCY_CODE = re.compile(r"[A-Z]{3}")


class LoanStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    DELINQUENT = "DELINQUENT"
    PAID = "PAID"
    WRITTEN_OFF = "WRITTEN_OFF"  # written off on or before the date: for good


class PrepaymentPolicy(enum.Enum):
    """What a borrower may pay ahead of the current installment (per loan)."""

    DUE_ONLY = "DUE_ONLY"  # overdue installments and the current one, no more
    WHOLE_INSTALLMENTS = "WHOLE_INSTALLMENTS"  # also future ones, whole, oldest first


class PayoffInterest(enum.Enum):
    """The interest an early payoff owes (per loan)."""

    FULL = "FULL"  # all of it: the payoff amount is the outstanding
    WAIVE_UNDUE = "WAIVE_UNDUE"  # the interest of installments not yet due is waived


class InstallmentStatus(enum.Enum):
    UNPAID = "UNPAID"
    OVERDUE = "OVERDUE"
    PAID = "PAID"


def check_currency_code(
    refusals: Refusals,
    code: str,
    field_name: str = "currency_code",
    *,
    known: Container[str] | None = None,
) -> None:
    """A currency is a code of the ISO 4217 list. The domain holds no copy of the
    list: the caller gives it as `known` (the services give the maintained one,
    `services.currencies.ISO_4217`); without it only the shape, three capital
    letters, is checked."""
    if CURRENCY_CODE.fullmatch(code) and (known is None or code in known):
        return
    shown = repr(code) if len(code) <= 16 else f"{code[:16]!r}..."
    upper = code.upper()
    if upper != code and (
        upper in known if known is not None else CURRENCY_CODE.fullmatch(upper)
    ):
        hint = f": codes are written in capital letters, e.g. {upper!r}"
    else:
        hint = ", e.g. IDR, USD"
    refusals.add(field_name, f"{shown} is not an ISO 4217 currency code{hint}")


def check_read_date(terms: LoanTerms, on: dt.date) -> None:
    """A read dated before the loan's start is refused: the loan did not exist yet
    (rules v2, "Time": OUT_OF_RANGE naming the start date)."""
    if on < terms.start_date:
        raise OutOfRange(
            f"{on} is before the loan's start date {terms.start_date}",
            reason="DATE_BEFORE_LOAN_START",
        )


def check_transaction_date(
    field_name: str,
    on: dt.date,
    *,
    business_date: dt.date,
    not_before: tuple[tuple[dt.date | None, str, str], ...],
) -> None:
    """A money movement's date: never in the future, nor before each of the
    `not_before` bounds, given as (date or None, what it is, reason suffix):
    e.g. the loan's start, its latest live payment. The reason is the field's
    name in capitals followed by the suffix (PAYMENT_DATE_IN_FUTURE, ...)."""
    prefix = field_name.upper()
    if on > business_date:
        raise InvalidArgument.of(
            field_name,
            f"{on} is in the future (business date is {business_date})",
            reason=f"{prefix}_IN_FUTURE",
        )
    for bound, what, suffix in not_before:
        if bound is not None and on < bound:
            raise InvalidArgument.of(
                field_name, f"{on} is before {what} {bound}", reason=f"{prefix}_{suffix}"
            )


def loan_date_bounds(
    terms: LoanTerms, last_payment_date: dt.date | None, written_off_on: dt.date | None = None
) -> tuple[tuple[dt.date | None, str, str], ...]:
    """What a payment or a write-off may not be dated before: the loan's start, its
    latest live payment and its write-off, which counts as its latest transaction
    (bounds for check_transaction_date)."""
    return (
        (terms.start_date, "the loan's start date", "BEFORE_START"),
        (last_payment_date, "the loan's latest payment on", "BEFORE_LATEST_PAYMENT"),
        (written_off_on, "the loan's write-off on", "BEFORE_WRITE_OFF"),
    )


def round_half_up_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0 < denominator."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True)
class Installment:
    week_number: int
    due_date: dt.date
    amount: int
    principal_amount: int
    interest_amount: int


@dataclass(frozen=True, slots=True)
class LoanTerms:
    """Validated loan terms with the derived amounts. Build with `LoanTerms.create`."""

    principal_amount: int
    interest_rate_bps: int
    weeks: int
    start_date: dt.date
    currency_code: str = DEFAULT_CURRENCY
    delinquency_threshold: int = DEFAULT_DELINQUENCY_THRESHOLD
    prepayment_policy: PrepaymentPolicy = PrepaymentPolicy.DUE_ONLY
    payoff_interest: PayoffInterest = PayoffInterest.FULL

    @classmethod
    def create(
        cls,
        *,
        principal_amount: int,
        interest_rate_bps: int,
        weeks: int,
        start_date: dt.date,
        currency_code: str = DEFAULT_CURRENCY,
        delinquency_threshold: int = DEFAULT_DELINQUENCY_THRESHOLD,
        prepayment_policy: PrepaymentPolicy = PrepaymentPolicy.DUE_ONLY,
        payoff_interest: PayoffInterest = PayoffInterest.FULL,
        currencies: Container[str] | None = None,
    ) -> LoanTerms:
        """Checks every rule on loan inputs; raises InvalidArgument naming each bad
        field. `currencies`: the ISO 4217 codes (see check_currency_code)."""
        refusals = Refusals()
        principal_ok = 0 < principal_amount <= INT64_MAX
        weeks_ok = 1 <= weeks <= MAX_WEEKS
        rate_ok = 0 <= interest_rate_bps <= MAX_RATE_BPS
        if not principal_ok:
            refusals.add("principal_amount", f"must be between 1 and {INT64_MAX}")
        if not weeks_ok:
            refusals.add("weeks", f"must be between 1 and {MAX_WEEKS}")
        if not rate_ok:
            refusals.add(
                "interest_rate_bps",
                f"must be between 0 and {MAX_RATE_BPS} basis points (1000 = 10.00 %)",
            )
        check_currency_code(refusals, currency_code, known=currencies)
        if delinquency_threshold < 1:
            refusals.add("delinquency_threshold", "must be 1 or more")
        if weeks_ok and start_date > dt.date.max - dt.timedelta(days=DAYS_PER_WEEK * weeks):
            refusals.add("start_date", "the last installment would fall after 9999-12-31")
        if principal_ok and rate_ok:
            # Checked beside the other fields so that one answer names every problem.
            total = principal_amount + round_half_up_div(
                principal_amount * interest_rate_bps, BPS_DENOMINATOR
            )
            if total > INT64_MAX:
                refusals.add(
                    "principal_amount", f"principal plus interest must not exceed {INT64_MAX}"
                )
            elif weeks_ok and total // weeks == 0:
                refusals.add(
                    "weeks", f"a total of {total} over {weeks} weeks gives installments of 0"
                )
        refusals.raise_if_any()
        return cls(
            principal_amount=principal_amount,
            interest_rate_bps=interest_rate_bps,
            weeks=weeks,
            start_date=start_date,
            currency_code=currency_code,
            delinquency_threshold=delinquency_threshold,
            prepayment_policy=prepayment_policy,
            payoff_interest=payoff_interest,
        )

    @property
    def interest_amount(self) -> int:
        """Flat interest for the whole term, rounded half up to a whole unit."""
        return round_half_up_div(self.principal_amount * self.interest_rate_bps, BPS_DENOMINATOR)

    @property
    def total_amount(self) -> int:
        return self.principal_amount + self.interest_amount

    @property
    def weekly_payment(self) -> int:
        return self.total_amount // self.weeks

    @property
    def last_due_date(self) -> dt.date:
        return self.due_date(self.weeks)

    def due_date(self, week_number: int) -> dt.date:
        return self.start_date + dt.timedelta(days=DAYS_PER_WEEK * week_number)

    def amount_through(self, week_number: int) -> int:
        """Sum of installments 1..week_number: the last one absorbs the remainder."""
        if week_number >= self.weeks:
            return self.total_amount
        return self.weekly_payment * max(week_number, 0)

    def interest_part(self, amount: int) -> int:
        """J(x): the interest part of a cumulative amount x (0..total).

        Interest is spread in proportion to the amount repaid so far, rounded
        down cumulatively: every portion is >= 0 and <= its amount, and the
        portions add up to exactly the interest.
        """
        return self.interest_amount * amount // self.total_amount

    def interest_through(self, week_number: int) -> int:
        """Interest portion of installments 1..week_number."""
        return self.interest_part(self.amount_through(week_number))

    def installments_covered(self, paid_amount: int) -> int:
        """c(A): the installments fully covered by a paid amount, the largest c with
        amount_through(c) <= A."""
        if paid_amount >= self.total_amount:
            return self.weeks
        return min(max(paid_amount, 0) // self.weekly_payment, self.weeks - 1)

    def installment(self, week_number: int) -> Installment:
        amount = self.amount_through(week_number) - self.amount_through(week_number - 1)
        interest = self.interest_through(week_number) - self.interest_through(week_number - 1)
        return Installment(
            week_number=week_number,
            due_date=self.due_date(week_number),
            amount=amount,
            principal_amount=amount - interest,
            interest_amount=interest,
        )

    def schedule(self) -> list[Installment]:
        """Every installment, as `installment(k)` gives it."""
        return list(_schedule(self))

    def weeks_due_before(self, on: dt.date) -> int:
        """How many installments fell due strictly before `on`."""
        days = (on - self.start_date).days
        return min(max((days - 1) // DAYS_PER_WEEK, 0), self.weeks)


@functools.lru_cache(maxsize=256)
def _schedule(terms: LoanTerms) -> tuple[Installment, ...]:
    """The schedule of `terms`, remembered: a new loan's is wanted twice (its rows
    and the answer), and the day's loans of one product share theirs. The
    cumulative amount and interest are taken once per week, not twice as
    `installment(k)` alone must."""
    lines: list[Installment] = []
    amount_before = interest_before = 0
    for week in range(1, terms.weeks + 1):
        amount_to = terms.amount_through(week)
        interest_to = terms.interest_part(amount_to)
        amount = amount_to - amount_before
        interest = interest_to - interest_before
        lines.append(
            Installment(
                week_number=week,
                due_date=terms.due_date(week),
                amount=amount,
                principal_amount=amount - interest,
                interest_amount=interest,
            )
        )
        amount_before, interest_before = amount_to, interest_to
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class Position:
    """A loan as it stood at the end of `as_of`, given the amount `paid_amount`
    (A) paid by then, and the date it was written off, if it was."""

    terms: LoanTerms
    paid_amount: int
    as_of: dt.date
    written_off_on: dt.date | None = None

    @property
    def written_off(self) -> bool:
        """Written off on or before as_of: the status is WRITTEN_OFF from that day."""
        return self.written_off_on is not None and self.written_off_on <= self.as_of

    @property
    def paid_count(self) -> int:
        """c(A): installments fully covered, weeks 1..paid_count."""
        return self.terms.installments_covered(self.paid_amount)

    @property
    def outstanding_amount(self) -> int:
        return self.terms.total_amount - self.paid_amount

    @property
    def outstanding_interest_amount(self) -> int:
        return self.terms.interest_amount - self.terms.interest_part(self.paid_amount)

    @property
    def outstanding_principal_amount(self) -> int:
        return self.outstanding_amount - self.outstanding_interest_amount

    @property
    def missed_installments(self) -> int:
        """Installments not fully covered with a due date before as_of; they are
        weeks paid_count+1.., always consecutive."""
        return max(self.terms.weeks_due_before(self.as_of) - self.paid_count, 0)

    @property
    def overdue_amount(self) -> int:
        """What the missed installments still lack: cum(c + missed) - A."""
        missed = self.missed_installments
        if missed == 0:
            return 0
        return self.terms.amount_through(self.paid_count + missed) - self.paid_amount

    @property
    def days_past_due(self) -> int:
        if self.missed_installments == 0:
            return 0
        return (self.as_of - self.terms.due_date(self.paid_count + 1)).days

    @property
    def delinquent(self) -> bool:
        return self.missed_installments >= self.terms.delinquency_threshold

    @property
    def status(self) -> LoanStatus:
        if self.written_off:
            return LoanStatus.WRITTEN_OFF
        if self.paid_amount >= self.terms.total_amount:
            return LoanStatus.PAID
        if self.delinquent:
            return LoanStatus.DELINQUENT
        return LoanStatus.ACTIVE

    @property
    def next_installment(self) -> Installment | None:
        """The oldest installment not fully covered, or None when the loan is paid off."""
        if self.paid_amount >= self.terms.total_amount:
            return None
        return self.terms.installment(self.paid_count + 1)

    def installment_status(self, week_number: int) -> InstallmentStatus:
        if week_number <= self.paid_count:
            return InstallmentStatus.PAID
        if self.terms.due_date(week_number) < self.as_of:
            return InstallmentStatus.OVERDUE
        return InstallmentStatus.UNPAID


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """An installment of a stored schedule, with the date a payment settled it."""

    installment: Installment
    paid_date: dt.date | None


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    """An installment as it stood at a date: paid, overdue or not yet due."""

    installment: Installment
    status: InstallmentStatus
    paid_date: dt.date | None


def stored_status(
    terms: LoanTerms,
    paid_amount: int,
    business_date: dt.date,
    written_off_on: dt.date | None = None,
) -> LoanStatus:
    """The status a loan row keeps: the status at the business date, which payments,
    reversals, write-offs and the sweep keep current (a payment dated in the past
    still stores today's)."""
    return Position(terms, paid_amount, business_date, written_off_on).status


@dataclass(frozen=True, slots=True)
class WriteOff:
    """A loan's write-off: its date, why, what it gave up, and the request's key."""

    on: dt.date
    reason: str
    principal_amount: int
    interest_amount: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Loan:
    """The loan aggregate: its terms, its repayment state and its stored status."""

    id: int
    customer_id: int
    terms: LoanTerms
    paid_amount: int
    last_payment_date: dt.date | None
    status: LoanStatus
    request_id: str | None = None
    # Bumped by every reversal and recovery: the events a write reports are unique
    # per (kind, week) within one version of the live history (domain.events).
    history_version: int = 0
    write_off: WriteOff | None = None

    @classmethod
    def new(
        cls, loan_id: int, customer_id: int, terms: LoanTerms, today: dt.date,
        request_id: str | None,
    ) -> Loan:
        return cls(
            id=loan_id,
            customer_id=customer_id,
            terms=terms,
            paid_amount=0,
            last_payment_date=None,
            status=stored_status(terms, 0, today),
            request_id=request_id,
        )

    @property
    def paid_count(self) -> int:
        return self.terms.installments_covered(self.paid_amount)

    @property
    def outstanding_amount(self) -> int:
        return self.terms.total_amount - self.paid_amount

    @property
    def written_off_on(self) -> dt.date | None:
        return self.write_off.on if self.write_off is not None else None

    def date_bounds(self) -> tuple[tuple[dt.date | None, str, str], ...]:
        """What a payment or a write-off on this loan may not be dated before."""
        return loan_date_bounds(self.terms, self.last_payment_date, self.written_off_on)

    def knows_paid_amount_at(self, as_of: dt.date) -> bool:
        """Whether `paid_amount` is the amount paid by the end of `as_of`: true
        unless `as_of` is before the latest payment, which a read then looks up in
        the payments dated on or before it."""
        return self.last_payment_date is None or as_of >= self.last_payment_date

    def position(self, as_of: dt.date, paid_amount_then: int | None = None) -> Position:
        """The loan at the end of `as_of`; `paid_amount_then` is required (and
        used) only where `knows_paid_amount_at(as_of)` is false."""
        if self.knows_paid_amount_at(as_of):
            return Position(self.terms, self.paid_amount, as_of, self.written_off_on)
        if paid_amount_then is None:
            raise ValueError(f"loan {self.id}: the amount paid by {as_of} must be looked up")
        return Position(self.terms, paid_amount_then, as_of, self.written_off_on)

    def check_retry(self, customer_id: int, terms: LoanTerms, *, start_date_given: bool) -> None:
        """A CreateLoan retry must ask for this loan: the same customer and terms
        (a retry that left the start date to the server may come on another day)."""
        asked = terms if start_date_given else replace(terms, start_date=self.terms.start_date)
        if customer_id != self.customer_id or asked != self.terms:
            raise AlreadyExists(
                f"request_id {self.request_id!r} already created loan {self.id} with other "
                "terms; use a new request_id for a new loan"
            )


def schedule_at(position: Position, entries: list[ScheduleEntry]) -> list[ScheduleLine]:
    """A stored schedule as it stood at the position's date: a read of the past
    does not show payments made after it."""
    return [
        ScheduleLine(
            installment=entry.installment,
            status=position.installment_status(entry.installment.week_number),
            paid_date=(
                entry.paid_date if entry.installment.week_number <= position.paid_count else None
            ),
        )
        for entry in entries
    ]
