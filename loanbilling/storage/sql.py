"""The SQL twins of domain rules: the one home of rule arithmetic in SQL.

Set-based work (the sweep, the portfolio summary) runs rules over many loans
in one statement, without loading a loan. The rules themselves live in
loanbilling.domain; each expression here mirrors one of them, names it in its
docstring, and compiles the same for PostgreSQL and SQLite. The statements in
storage.sweep and storage.portfolio are built from these expressions only.
Hypothesis tests on both databases hold each pair together:
tests/integration/test_sweep_sql.py and tests/integration/test_portfolio_sql.py.

Expressions take the loan's columns from `table`: the loans table or a CTE
carrying the same column names. As in the domain, a loan's state is its paid
amount A: every amount is computed from A, every count from c(A)
(`installments_covered`); none multiplies two amounts, so none overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Date, Integer, bindparam, case, cast, func, literal, null, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from loanbilling.domain.events import EventKind
from loanbilling.domain.loan import DAYS_PER_WEEK, LoanStatus
from loanbilling.domain.portfolio import BUCKET_TOTALS, PAR_BUCKETS, STATUS_TOTALS
from loanbilling.storage.event_store import EVENT_COLUMNS
from loanbilling.storage.tables import Id, loans, payments


class days_between(FunctionElement):  # noqa: N801 - reads as the SQL function it is
    """later - earlier, in whole days, for two DATE expressions."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between, "postgresql")
def _days_between_pg(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return (
        f"CAST(julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)}) AS INTEGER)"
    )


def date_param(value) -> ColumnElement:
    """A DATE bind parameter of its own for one value."""
    return bindparam(None, value, type_=Date(), unique=True)


def _clamp(value, low, high) -> ColumnElement:
    # max/min of two values: greatest/least in PostgreSQL, scalar max/min in SQLite.
    return case((value < low, low), (value > high, high), else_=value)


def _least(a, b) -> ColumnElement:
    return case((a < b, a), else_=b)


def _weeks_within(days, table) -> ColumnElement:
    """floor(days / 7) clamped to 0..weeks: integer division truncates toward zero
    in both databases, and the clamp at 0 makes that equal to the floor."""
    return _clamp(days // DAYS_PER_WEEK, literal(0), table.c.weeks)


# loanbilling.domain.loan.LoanTerms


def weeks_due_before(on: ColumnElement, table=loans) -> ColumnElement:
    """Installments due strictly before the DATE `on`: twin of LoanTerms.weeks_due_before."""
    return _weeks_within(days_between(on, table.c.start_date) - 1, table)


def amount_through(week_number, table=loans) -> ColumnElement:
    """Sum of installments 1..week_number: twin of LoanTerms.amount_through."""
    return case(
        (week_number >= table.c.weeks, table.c.total_amount),
        (week_number <= 0, literal(0)),
        else_=table.c.weekly_payment * week_number,
    )


def installments_covered(paid_amount, table=loans) -> ColumnElement:
    """c(A), the installments fully covered by the paid amount A: twin of
    LoanTerms.installments_covered. A is never negative in storage, so the
    domain's max(A, 0) is A, and A / weekly_payment is integer division (both
    BIGINT) that truncates, i.e. floors, in both databases."""
    return case(
        (paid_amount >= table.c.total_amount, table.c.weeks),
        else_=_least(paid_amount // table.c.weekly_payment, table.c.weeks - 1),
    )


# loanbilling.domain.loan.Loan


def is_live(table=payments) -> ColumnElement:
    """Twin of Payment.live: not reversed. A reversed payment counts at no date."""
    return table.c.reversal_date.is_(None)


def paid_amount_by(loan_id, on):
    """A(on): the paid amount right after the latest payment of `loan_id` dated on
    or before `on` (no row: none), one index seek however many payments the loan
    has. What a read of the past takes where not Loan.knows_paid_amount_at(on).
    Of one day's payments the latest has the largest paid_amount_after, payments
    only adding to A; the index (loan_id, payment_date, paid_amount_after) serves
    the order as it stands. Reversed payments are skipped: a reversal re-allocates
    the later live ones, so their paid_amount_after is A under the live history."""
    return (
        select(payments.c.paid_amount_after)
        .where(payments.c.loan_id == loan_id, payments.c.payment_date <= on, is_live())
        .order_by(payments.c.payment_date.desc(), payments.c.paid_amount_after.desc())
        .limit(1)
    )


def paid_amount_at(on: ColumnElement, table=loans) -> ColumnElement:
    """A(on), the amount paid by the end of the DATE `on`: twin of the paid amount
    Loan.position takes. The loan row's paid_amount where
    Loan.knows_paid_amount_at(on), else `paid_amount_by` (0 without a payment)."""
    past = paid_amount_by(table.c.id, on).scalar_subquery()
    knows = table.c.last_payment_date.is_(None) | (table.c.last_payment_date <= on)
    return case((knows, table.c.paid_amount), else_=func.coalesce(past, 0))


class PositionSql:
    """Twin of loanbilling.domain.loan.Position: a loan of `table` at a date, given
    its paid amount A (`paid_amount`), as SQL expressions. Amounts are computed
    from A; counts from `paid_count`, c(A), which is `installments_covered(A)`
    unless given (a column that holds it, so as not to compute it again).
    `days` is the number of days from the loan's start to the date and
    `due_before` its weeks_due_before (and `due_through` its weeks_due_through,
    if known): passed in, so that a statement may compute them once (e.g. in a
    CTE)."""

    def __init__(
        self,
        table,
        paid_amount,
        *,
        paid_count=None,
        days,
        due_before,
        due_through=None,
        as_of: ColumnElement,
    ) -> None:
        self.table = table
        # Position.written_off: never NULL (a NULL date fails the first term).
        self.written_off = table.c.write_off_date.is_not(None) & (
            table.c.write_off_date <= as_of
        )
        self.paid_amount = paid_amount
        # Position.paid_count: c(A).
        self.paid_count = (
            installments_covered(paid_amount, table) if paid_count is None else paid_count
        )
        self.days = days
        self.due_before = due_before
        # domain.portfolio.weeks_due_through at the date, where a statement computed it.
        self.due_through = due_through

    @classmethod
    def of_row(cls, table, as_of: ColumnElement) -> PositionSql:
        """The loan row's stored state at the DATE `as_of`: its paid_amount, and its
        paid_count for c(A), which every write keeps equal to
        installments_covered(paid_amount) (the materialised twin)."""
        return cls(
            table,
            table.c.paid_amount,
            paid_count=table.c.paid_count,
            days=days_between(as_of, table.c.start_date),
            due_before=weeks_due_before(as_of, table),
            as_of=as_of,
        )

    @property
    def _behind(self) -> ColumnElement:
        # Some installment due before the date is not fully covered: missed_installments > 0.
        return self.due_before > self.paid_count

    @property
    def missed_installments(self) -> ColumnElement:
        """Twin of Position.missed_installments."""
        return case((self._behind, self.due_before - self.paid_count), else_=literal(0))

    @property
    def overdue_amount(self) -> ColumnElement:
        """Twin of Position.overdue_amount, cum(c + missed) - A: c + missed is
        due_before when behind, and the amount is 0 otherwise."""
        owed = amount_through(self.due_before, self.table) - self.paid_amount
        return case((self._behind, owed), else_=literal(0))

    @property
    def days_past_due(self) -> ColumnElement:
        """Twin of Position.days_past_due: days since installment paid_count + 1 fell due."""
        return case(
            (self._behind, self.days - DAYS_PER_WEEK * (self.paid_count + 1)), else_=literal(0)
        )

    @property
    def outstanding_amount(self) -> ColumnElement:
        """Twin of Position.outstanding_amount: T - A."""
        return self.table.c.total_amount - self.paid_amount

    @property
    def delinquent(self) -> ColumnElement:
        """Twin of Position.delinquent."""
        return self.missed_installments >= self.table.c.delinquency_threshold

    def status_is(self, status: LoanStatus) -> ColumnElement:
        """Whether Position.status is `status`: twin of Position.status."""
        if status is LoanStatus.WRITTEN_OFF:
            return self.written_off
        paid_off = ~self.written_off & (self.paid_amount >= self.table.c.total_amount)
        if status is LoanStatus.PAID:
            return paid_off
        repaying = ~self.written_off & ~paid_off
        if status is LoanStatus.DELINQUENT:
            return repaying & self.delinquent
        return repaying & ~self.delinquent


# loanbilling.domain.events


def event_columns(
    kind, table, position: PositionSql, *, week_number, amount, due_date, business_date, created_at
) -> list[ColumnElement]:
    """The outbox row (storage.event_store.EVENT_COLUMNS, in order) of an event about
    the loan of `table` at `position`: twin of loanbilling.domain.events._event, which
    gives every event the loan's position figures. No sweep event has a payment."""
    values = {
        "kind": kind,
        "loan_id": table.c.id,
        "customer_id": table.c.customer_id,
        "week_number": week_number,
        "business_date": business_date,
        "amount": amount,
        "due_date": due_date,
        "missed_installments": position.missed_installments,
        "overdue_amount": position.overdue_amount,
        "days_past_due": position.days_past_due,
        "outstanding_amount": position.outstanding_amount,
        "currency_code": table.c.currency_code,
        "payment_id": cast(null(), Id),
        "history_version": table.c.history_version,
        "created_at": created_at,
    }
    return [values[name].label(name) for name in EVENT_COLUMNS]


def oldest_overdue_week(position: PositionSql) -> ColumnElement:
    """The week a "loan delinquent" event is keyed by: twin of the week of
    loanbilling.domain.events.delinquent_event (its amount is the overdue amount)."""
    return position.paid_count + 1


# loanbilling.domain.sweep


def is_swept(table=loans) -> ColumnElement:
    """Twin of domain.sweep.is_swept (the sweep's partial index has the same WHERE,
    storage.tables.SWEPT)."""
    return (table.c.status != LoanStatus.PAID.value) & (
        table.c.status != LoanStatus.WRITTEN_OFF.value
    )


@dataclass(frozen=True)
class WeekRange:
    """Weeks after `after` through `through`, as SQL: twin of a Python range."""

    after: ColumnElement
    through: ColumnElement

    def any(self) -> ColumnElement:
        return self.through > self.after

    def holds(self, week_number) -> ColumnElement:
        return (week_number > self.after) & (week_number <= self.through)


def schedule_event_weeks(position: PositionSql, window_end: ColumnElement) -> WeekRange:
    """Twin of domain.sweep.schedule_event_weeks; `window_end` is the DATE
    domain.sweep.reminder_window_end gives."""
    return WeekRange(position.paid_count, weeks_due_before(window_end, position.table))


def schedule_event_kind(due_date, as_of: ColumnElement) -> ColumnElement:
    """Twin of domain.sweep.schedule_event_kind, for an unpaid installment due on `due_date`."""
    return case(
        (due_date < as_of, literal(EventKind.INSTALLMENT_MISSED.value)),
        else_=literal(EventKind.PAYMENT_DUE_SOON.value),
    )


def flips_to_delinquent(position: PositionSql) -> ColumnElement:
    """Twin of domain.sweep.flips_to_delinquent, on the loan row's stored status."""
    return (position.table.c.status == LoanStatus.ACTIVE.value) & position.delinquent


# loanbilling.domain.portfolio


def in_portfolio(as_of: ColumnElement, currency_code: str, table=loans) -> ColumnElement:
    """Twin of domain.portfolio.in_portfolio."""
    return (table.c.currency_code == currency_code) & (table.c.start_date <= as_of)


def weeks_due_through(days, table=loans) -> ColumnElement:
    """Twin of domain.portfolio.weeks_due_through, given the days from the loan's
    start to the date."""
    return _weeks_within(days, table)


def in_risk_bucket(days_past_due, bucket: tuple[int, int | None]) -> ColumnElement:
    """Twin of domain.portfolio.in_risk_bucket."""
    low, high = bucket
    held = days_past_due >= low
    return held if high is None else held & (days_past_due <= high)


def waived_interest_through(on: ColumnElement, currency_code: str) -> ColumnElement:
    """The portfolio's waived_interest_amount: the sum over the loans in_portfolio of
    the interest waived by their payoffs dated on or before the DATE `on` (twin of
    the waived_interest_amount domain.portfolio.loan_totals takes, summed). One
    scalar subquery over the few payments that waived anything (the partial index
    ix_payments_waived_loan_id_payment_date), joined to their loans: not a lookup
    per loan of the portfolio. 0 without any."""
    return (
        select(func.coalesce(func.sum(payments.c.waived_interest_amount), literal(0)))
        .select_from(payments.join(loans, loans.c.id == payments.c.loan_id))
        .where(
            payments.c.waived_interest_amount > 0,
            payments.c.payment_date <= on,
            is_live(),
            in_portfolio(on, currency_code),
        )
        .scalar_subquery()
    )


def loan_totals(position: PositionSql) -> dict[str, ColumnElement]:
    """What the loan adds to each summed figure: twin of domain.portfolio.loan_totals
    (with domain.portfolio.due_amount and collected_toward_due inside), except
    waived_interest_amount, summed on its own by `waived_interest_through`. The
    write-off's amounts are the loan's columns (NULL unless written off)."""
    t = position.table
    due_through = position.due_through
    if due_through is None:
        due_through = weeks_due_through(position.days, t)
    due = amount_through(due_through, t)
    outstanding = position.outstanding_amount
    written_off = position.written_off
    one, zero = literal(1), literal(0)

    def where(condition, value) -> ColumnElement:
        return case((condition, value), else_=zero)

    given_up = t.c.written_off_principal_amount + t.c.written_off_interest_amount
    totals = {
        "loan_count": one,
        "principal_disbursed": t.c.principal_amount,
        "total_repayable": t.c.total_amount,
        "outstanding_amount": outstanding,
        "overdue_amount": position.overdue_amount,
        "due_amount": due,
        "collected_toward_due": _least(position.paid_amount, due),
        "written_off_principal_amount": where(written_off, t.c.written_off_principal_amount),
        "written_off_interest_amount": where(written_off, t.c.written_off_interest_amount),
        "recovered_amount": where(written_off, given_up - outstanding),
    }
    for status, (count, principal, owed) in STATUS_TOTALS.items():
        held = position.status_is(status)
        totals[count] = where(held, one)
        totals[principal] = where(held, t.c.principal_amount)
        totals[owed] = where(held, outstanding)
    for bucket, (count, owed) in zip(PAR_BUCKETS, BUCKET_TOTALS, strict=True):
        held = ~written_off & in_risk_bucket(position.days_past_due, bucket)
        totals[count] = where(held, one)
        totals[owed] = where(held, outstanding)
    return totals
