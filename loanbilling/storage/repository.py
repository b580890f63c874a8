"""The portable storage of customers, loans and payments on one connection.

Plain SQLAlchemy Core: one statement per step, no ORM identity map, so that a
payment costs a handful of indexed statements whatever the size of the tables.
It runs on SQLite and PostgreSQL; loanbilling.storage.one_statement writes the
same decisions on PostgreSQL in one statement each. Both answer with domain
objects (loanbilling.storage.interfaces).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from loanbilling.domain.customer import Customer, CustomerDetails
from loanbilling.domain.events import NewEvent
from loanbilling.domain.history import ReversalDecision
from loanbilling.domain.journal import NewEntry
from loanbilling.domain.loan import (
    Installment,
    Loan,
    LoanStatus,
    LoanTerms,
    PayoffInterest,
    PrepaymentPolicy,
    ScheduleEntry,
    WriteOff,
)
from loanbilling.domain.payment import Payment, PaymentKind, Reversal
from loanbilling.storage import posting
from loanbilling.storage.event_store import event_row, queue_events
from loanbilling.storage.interfaces import PaymentSlot
from loanbilling.storage.sql import paid_amount_by
from loanbilling.storage.tables import customers, events, installments, loans, payments


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def customer_from_row(row: Row) -> Customer:
    return Customer(row.id, row.name, row.email, row.phone, row.request_id)


def loan_from_row(row: Row) -> Loan:
    terms = LoanTerms(
        principal_amount=row.principal_amount,
        interest_rate_bps=row.interest_rate_bps,
        weeks=row.weeks,
        start_date=row.start_date,
        currency_code=row.currency_code,
        delinquency_threshold=row.delinquency_threshold,
        prepayment_policy=PrepaymentPolicy(row.prepayment_policy),
        payoff_interest=PayoffInterest(row.payoff_interest),
    )
    write_off = None
    if row.write_off_date is not None:
        write_off = WriteOff(
            on=row.write_off_date,
            reason=row.write_off_reason,
            principal_amount=row.written_off_principal_amount,
            interest_amount=row.written_off_interest_amount,
            idempotency_key=row.write_off_key,
        )
    return Loan(
        id=row.id,
        customer_id=row.customer_id,
        terms=terms,
        paid_amount=row.paid_amount,
        last_payment_date=row.last_payment_date,
        status=LoanStatus(row.status),
        request_id=row.request_id,
        history_version=row.history_version,
        write_off=write_off,
    )


def payment_from_row(row: Row) -> Payment:
    reversal = None
    if row.reversal_date is not None:
        reversal = Reversal(
            on=row.reversal_date,
            reason=row.reversal_reason,
            idempotency_key=row.reversal_key,
            outstanding_after=row.reversal_outstanding_after,
            status_after=LoanStatus(row.reversal_status_after),
        )
    return Payment(
        id=row.id,
        loan_id=row.loan_id,
        amount=row.amount,
        currency_code=row.currency_code,
        payment_date=row.payment_date,
        first_week=row.first_week,
        last_week=row.last_week,
        idempotency_key=row.idempotency_key,
        outstanding_after=row.outstanding_after,
        status_after=LoanStatus(row.status_after),
        principal_amount=row.principal_amount,
        interest_amount=row.interest_amount,
        kind=PaymentKind(row.kind),
        waived_interest_amount=row.waived_interest_amount,
        reversal=reversal,
    )


def loan_row(loan: Loan, written_at: dt.datetime) -> dict[str, object]:
    """The loans row of a new loan: its terms and their derived amounts."""
    terms = loan.terms
    return {
        "id": loan.id,
        "customer_id": loan.customer_id,
        "principal_amount": terms.principal_amount,
        "interest_rate_bps": terms.interest_rate_bps,
        "weeks": terms.weeks,
        "start_date": terms.start_date,
        "currency_code": terms.currency_code,
        "delinquency_threshold": terms.delinquency_threshold,
        "interest_amount": terms.interest_amount,
        "total_amount": terms.total_amount,
        "weekly_payment": terms.weekly_payment,
        "paid_amount": loan.paid_amount,
        "paid_count": loan.paid_count,
        "outstanding_amount": loan.outstanding_amount,
        "last_payment_date": loan.last_payment_date,
        "status": loan.status.value,
        "request_id": loan.request_id,
        "prepayment_policy": terms.prepayment_policy.value,
        "payoff_interest": terms.payoff_interest.value,
        "created_at": written_at,
        "updated_at": written_at,
        "history_version": loan.history_version,
    }


def payment_row(payment: Payment, paid_after: int, written_at: dt.datetime) -> dict[str, object]:
    """The payments row of `payment`, which took the loan's paid amount to `paid_after`."""
    return {
        "id": payment.id,
        "loan_id": payment.loan_id,
        "amount": payment.amount,
        "currency_code": payment.currency_code,
        "payment_date": payment.payment_date,
        "first_week": payment.first_week,
        "last_week": payment.last_week,
        "idempotency_key": payment.idempotency_key,
        "outstanding_after": payment.outstanding_after,
        "status_after": payment.status_after.value,
        "principal_amount": payment.principal_amount,
        "interest_amount": payment.interest_amount,
        "kind": payment.kind.value,
        "waived_interest_amount": payment.waived_interest_amount,
        "paid_amount_after": paid_after,
        "created_at": written_at,
    }


def next_id(dialect_name: str, table):
    """The next id of `table`, drawn before its row is written so that the events
    written with it can name it. PostgreSQL: its sequence. SQLite: one more than
    the largest, which only a write transaction (BEGIN IMMEDIATE) may use."""
    if dialect_name == "postgresql":
        return func.nextval(func.pg_get_serial_sequence(table.name, "id"))
    return select(func.coalesce(func.max(table.c.id), 0) + 1).scalar_subquery()


# The statements of the hot paths (payments and reads), built once. Building a
# select() and its cache key costs more CPU than PostgreSQL spends running it;
# a prebuilt statement memoizes both and only takes new parameters.
_CUSTOMER = select(customers).where(customers.c.id == bindparam("id"))
_LOAN = select(loans).where(loans.c.id == bindparam("id"))
_LOCKED_LOAN = _LOAN.with_for_update(of=loans)
_PAID_BY = paid_amount_by(bindparam("loan_id"), bindparam("on"))
_PAYMENT_BY_KEY = select(payments).where(payments.c.idempotency_key == bindparam("key"))
_KEY_PAYMENT_ID = (
    select(payments.c.id)
    .where(payments.c.idempotency_key == bindparam("key"))
    .scalar_subquery()
    .label("key_payment_id")
)


def _slot_statements():
    """A payment's first read. Unlocked: the loan and whether a payment holds the
    key, in one statement. Locking: the loan row only (FOR UPDATE; SQLite locks
    the file instead), the key being read after the lock is held: a statement
    that waited for the lock still sees the snapshot it started with, which may
    miss the payment of the request that held it."""
    unlocked = select(loans, _KEY_PAYMENT_ID).where(loans.c.id == bindparam("id"))
    locked = select(loans).where(loans.c.id == bindparam("id")).with_for_update(of=loans)
    return unlocked, locked


_SLOT_UNLOCKED, _SLOT_LOCKED = _slot_statements()
_NEXT_ID = {
    (dialect_name, table.name): select(next_id(dialect_name, table))
    for dialect_name in ("postgresql", "sqlite")
    for table in (loans, payments)
}


def draw_id(conn: Connection, table) -> int:
    return conn.execute(_NEXT_ID[conn.dialect.name, table.name]).scalar_one()

_INSERT_PAYMENT = insert(payments)
_SETTLE_INSTALLMENTS = (
    update(installments)
    .where(
        installments.c.loan_id == bindparam("b_loan_id"),
        installments.c.week_number.between(bindparam("b_first"), bindparam("b_last")),
    )
    .values(paid_date=bindparam("b_paid_date"), payment_id=bindparam("b_payment_id"))
)
# Guarded by the state read: a lost race updates no row.
_MOVE_BALANCE = (
    update(loans)
    .where(
        loans.c.id == bindparam("b_id"),
        loans.c.paid_amount == bindparam("b_paid_before"),
        loans.c.status == bindparam("b_status_before"),
        loans.c.history_version == bindparam("b_version_before"),
    )
    .values(
        paid_amount=bindparam("b_paid_amount"),
        paid_count=bindparam("b_paid_count"),
        outstanding_amount=bindparam("b_outstanding"),
        last_payment_date=bindparam("b_last_payment_date"),
        status=bindparam("b_status"),
        history_version=bindparam("b_version"),
        updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_EVENTS = insert(events).returning(events.c.id)
_REALLOCATE_PAYMENT = (
    update(payments)
    .where(payments.c.id == bindparam("b_id"))
    .values(
        first_week=bindparam("b_first"),
        last_week=bindparam("b_last"),
        principal_amount=bindparam("b_principal"),
        interest_amount=bindparam("b_interest"),
        paid_amount_after=bindparam("b_paid_after"),
        outstanding_after=bindparam("b_outstanding_after"),
        status_after=bindparam("b_status_after"),
    )
)
_UNSETTLE_INSTALLMENTS = (
    update(installments)
    .where(
        installments.c.loan_id == bindparam("b_loan_id"),
        installments.c.week_number > bindparam("b_covered"),
        installments.c.paid_date.is_not(None),
    )
    .values(paid_date=None, payment_id=None)
)


def _move_params(before: Loan, after: Loan, written_at: dt.datetime) -> dict[str, object]:
    """_MOVE_BALANCE's parameters: the loan's state as read, and as it becomes."""
    return {
        "b_id": before.id,
        "b_paid_before": before.paid_amount,
        "b_status_before": before.status.value,
        "b_version_before": before.history_version,
        "b_paid_amount": after.paid_amount,
        "b_paid_count": after.paid_count,
        "b_outstanding": after.outstanding_amount,
        "b_last_payment_date": after.last_payment_date,
        "b_status": after.status.value,
        "b_version": after.history_version,
        "b_updated_at": written_at,
    }


def add_events(conn: Connection, new_events: list[NewEvent], written_at: dt.datetime) -> None:
    """Writes events into the outbox, pending: the sequencer numbers them after commit."""
    if new_events:
        rows = [event_row(e, written_at) for e in new_events]
        queue_events(conn, conn.execute(_INSERT_EVENTS, rows).scalars().all())


class SqlCustomers:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, details: CustomerDetails, request_id: str | None) -> Customer:
        customer_id = self.conn.execute(
            insert(customers)
            .values(
                name=details.name,
                email=details.email,
                phone=details.phone,
                request_id=request_id,
                created_at=now(),
            )
            .returning(customers.c.id)
        ).scalar_one()
        return Customer(customer_id, details.name, details.email, details.phone, request_id)

    def get(self, customer_id: int) -> Customer | None:
        row = self.conn.execute(_CUSTOMER, {"id": customer_id}).first()
        return customer_from_row(row) if row else None

    def by_request_id(self, request_id: str) -> Customer | None:
        row = self.conn.execute(
            select(customers).where(customers.c.request_id == request_id)
        ).first()
        return customer_from_row(row) if row else None


class SqlLoans:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def reserve_id(self) -> int:
        return draw_id(self.conn, loans)

    def add(self, loan: Loan, new_events: list[NewEvent], entry: NewEntry) -> bool:
        if SqlCustomers(self.conn).get(loan.customer_id) is None:
            return False
        written_at = now()
        self.conn.execute(insert(loans), [loan_row(loan, written_at)])
        self.conn.execute(
            insert(installments),
            [installment_row(loan.id, i) for i in loan.terms.schedule()],
        )
        add_events(self.conn, new_events, written_at)
        posting.post(self.conn, entry, written_at)
        return True

    def get(self, loan_id: int) -> Loan | None:
        row = self.conn.execute(_LOAN, {"id": loan_id}).first()
        return loan_from_row(row) if row else None

    def lock(self, loan_id: int) -> Loan | None:
        """FOR UPDATE on PostgreSQL; SQLite's write transaction locks the file."""
        row = self.conn.execute(_LOCKED_LOAN, {"id": loan_id}).first()
        return loan_from_row(row) if row else None

    def by_request_id(self, request_id: str) -> Loan | None:
        row = self.conn.execute(select(loans).where(loans.c.request_id == request_id)).first()
        return loan_from_row(row) if row else None

    def by_write_off_key(self, idempotency_key: str) -> Loan | None:
        row = self.conn.execute(
            select(loans).where(loans.c.write_off_key == idempotency_key)
        ).first()
        return loan_from_row(row) if row else None

    def record_write_off(
        self, before: Loan, after: Loan, new_events: list[NewEvent], entry: NewEntry
    ) -> None:
        written_at = now()
        write_off = after.write_off
        assert write_off is not None
        written = self.conn.execute(
            update(loans)
            .where(loans.c.id == before.id, loans.c.write_off_date.is_(None))
            .values(
                status=after.status.value,
                write_off_date=write_off.on,
                write_off_reason=write_off.reason,
                written_off_principal_amount=write_off.principal_amount,
                written_off_interest_amount=write_off.interest_amount,
                write_off_key=write_off.idempotency_key,
                updated_at=written_at,
            )
        ).rowcount
        if written != 1:
            raise RuntimeError(f"loan {before.id} changed under its row lock")
        add_events(self.conn, new_events, written_at)
        posting.post(self.conn, entry, written_at)

    def list(
        self,
        *,
        customer_id: int | None,
        status: LoanStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[Loan]:
        query = select(loans).order_by(loans.c.id.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(loans.c.customer_id == customer_id)
        if status is not None:
            query = query.where(loans.c.status == status.value)
        if before_id is not None:
            query = query.where(loans.c.id < before_id)
        return [loan_from_row(row) for row in self.conn.execute(query)]

    def paid_amount_at(self, loan_id: int, on: dt.date) -> int:
        """One index seek (storage.sql.paid_amount_by)."""
        paid = self.conn.execute(_PAID_BY, {"loan_id": loan_id, "on": on}).scalar_one_or_none()
        return paid or 0

    def schedule(self, loan_id: int) -> list[ScheduleEntry]:
        rows = self.conn.execute(
            select(
                installments.c.week_number,
                installments.c.due_date,
                installments.c.amount,
                installments.c.principal_amount,
                installments.c.interest_amount,
                installments.c.paid_date,
            )
            .where(installments.c.loan_id == loan_id)
            .order_by(installments.c.week_number)
        )
        return [ScheduleEntry(Installment(*row[:5]), row.paid_date) for row in rows]


def installment_row(loan_id: int, installment: Installment) -> dict[str, object]:
    return {
        "loan_id": loan_id,
        "week_number": installment.week_number,
        "due_date": installment.due_date,
        "amount": installment.amount,
        "principal_amount": installment.principal_amount,
        "interest_amount": installment.interest_amount,
    }


class SqlPayments:
    def __init__(self, conn: Connection, *, locking: bool) -> None:
        self.conn = conn
        self.locking = locking

    def slot(self, loan_id: int, idempotency_key: str) -> PaymentSlot:
        if self.locking:
            row = self.conn.execute(_SLOT_LOCKED, {"id": loan_id}).first()
            earlier = self.by_key(idempotency_key) if row else None
        else:
            row = self.conn.execute(
                _SLOT_UNLOCKED, {"id": loan_id, "key": idempotency_key}
            ).first()
            earlier = self.by_key(idempotency_key) if row and row.key_payment_id else None
        return PaymentSlot(loan_from_row(row) if row else None, earlier)

    def next_id(self) -> int:
        return draw_id(self.conn, payments)

    def record(
        self,
        payment: Payment,
        before: Loan,
        after: Loan,
        new_events: list[NewEvent],
        entry: NewEntry,
    ) -> bool:
        written_at = now()
        moved = self.conn.execute(_MOVE_BALANCE, _move_params(before, after, written_at)).rowcount
        if moved != 1:  # only an unlocked read can lose the race: nothing was written
            if self.locking:
                raise RuntimeError(f"loan {before.id} changed under its row lock")
            return False
        self.conn.execute(_INSERT_PAYMENT, payment_row(payment, after.paid_amount, written_at))
        self.conn.execute(
            _SETTLE_INSTALLMENTS,
            {
                "b_loan_id": payment.loan_id,
                "b_first": payment.first_week,
                "b_last": payment.last_week,
                "b_paid_date": payment.payment_date,
                "b_payment_id": payment.id,
            },
        )
        add_events(self.conn, new_events, written_at)
        posting.post(self.conn, entry, written_at)
        return True

    def by_key(self, idempotency_key: str) -> Payment | None:
        row = self.conn.execute(_PAYMENT_BY_KEY, {"key": idempotency_key}).first()
        return payment_from_row(row) if row else None

    def get(self, payment_id: int) -> Payment | None:
        row = self.conn.execute(select(payments).where(payments.c.id == payment_id)).first()
        return payment_from_row(row) if row else None

    def of_loan(self, loan_id: int) -> list[Payment]:
        rows = self.conn.execute(
            select(payments).where(payments.c.loan_id == loan_id).order_by(payments.c.id)
        )
        return [payment_from_row(row) for row in rows]

    def by_reversal_key(self, idempotency_key: str) -> Payment | None:
        row = self.conn.execute(
            select(payments).where(payments.c.reversal_key == idempotency_key)
        ).first()
        return payment_from_row(row) if row else None

    def record_reversal(self, before: Loan, decision: ReversalDecision) -> None:
        written_at = now()
        target = decision.reversed
        reversal = target.reversal
        assert reversal is not None
        marked = self.conn.execute(
            update(payments)
            .where(payments.c.id == target.id, payments.c.reversal_date.is_(None))
            .values(
                last_week=target.last_week,
                reversal_date=reversal.on,
                reversal_reason=reversal.reason,
                reversal_key=reversal.idempotency_key,
                reversal_outstanding_after=reversal.outstanding_after,
                reversal_status_after=reversal.status_after.value,
            )
        ).rowcount
        if marked != 1:
            raise RuntimeError(f"payment {target.id} changed under its loan's row lock")
        if decision.reallocated:
            self.conn.execute(
                _REALLOCATE_PAYMENT,
                [
                    {
                        "b_id": r.payment.id,
                        "b_first": r.allocation.first_week,
                        "b_last": r.allocation.last_week,
                        "b_principal": r.allocation.principal_amount,
                        "b_interest": r.allocation.interest_amount,
                        "b_paid_after": r.allocation.paid_amount_after,
                        "b_outstanding_after": r.payment.outstanding_after,
                        "b_status_after": r.payment.status_after.value,
                    }
                    for r in decision.reallocated
                ],
            )
        after = decision.after
        # Weeks past c(A) are no longer fully covered; those a re-allocated payment
        # now covers take its date. Every other week keeps its payment.
        self.conn.execute(
            _UNSETTLE_INSTALLMENTS, {"b_loan_id": before.id, "b_covered": after.paid_count}
        )
        settles = [
            {
                "b_loan_id": before.id,
                "b_first": r.allocation.first_week,
                "b_last": r.allocation.last_week,
                "b_paid_date": r.payment.payment_date,
                "b_payment_id": r.payment.id,
            }
            for r in decision.reallocated
            if r.weeks_moved and r.allocation.last_week >= r.allocation.first_week
        ]
        if settles:
            self.conn.execute(_SETTLE_INSTALLMENTS, settles)
        moved = self.conn.execute(_MOVE_BALANCE, _move_params(before, after, written_at)).rowcount
        if moved != 1:
            raise RuntimeError(f"loan {before.id} changed under its row lock")
        add_events(self.conn, decision.events, written_at)
        posting.post(self.conn, decision.entry, written_at)

    def list(self, loan_id: int, *, after_id: int | None, limit: int) -> list[Payment]:
        query = (
            select(payments)
            .where(payments.c.loan_id == loan_id)
            .order_by(payments.c.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(payments.c.id > after_id)
        return [payment_from_row(row) for row in self.conn.execute(query)]
