"""Reads and writes of customers, loans, installments and payments on one connection.

Plain SQLAlchemy Core: one statement per step, no ORM identity map, so that a
payment costs a handful of indexed statements whatever the size of the tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from loanbilling.domain.events import NewEvent
from loanbilling.domain.loan import Installment, LoanStatus, LoanTerms
from loanbilling.storage.tables import customers, events, installments, loans, payments


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: int
    name: str
    email: str
    phone: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class LoanRecord:
    id: int
    customer_id: int
    terms: LoanTerms
    paid_count: int
    outstanding_amount: int
    last_payment_date: dt.date | None
    status: LoanStatus
    request_id: str | None


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: int
    loan_id: int
    amount: int
    currency_code: str
    payment_date: dt.date
    first_week: int
    last_week: int
    idempotency_key: str
    outstanding_after: int
    status_after: LoanStatus

    @property
    def settled_week_numbers(self) -> list[int]:
        return list(range(self.first_week, self.last_week + 1))


@dataclass(frozen=True, slots=True)
class InstallmentRecord:
    week_number: int
    due_date: dt.date
    amount: int
    principal_amount: int
    interest_amount: int
    paid_date: dt.date | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _customer(row: Row) -> CustomerRecord:
    return CustomerRecord(row.id, row.name, row.email, row.phone, row.request_id)


def _loan(row: Row) -> LoanRecord:
    terms = LoanTerms(
        principal_amount=row.principal_amount,
        interest_rate_bps=row.interest_rate_bps,
        weeks=row.weeks,
        start_date=row.start_date,
        currency_code=row.currency_code,
        delinquency_threshold=row.delinquency_threshold,
    )
    return LoanRecord(
        id=row.id,
        customer_id=row.customer_id,
        terms=terms,
        paid_count=row.paid_count,
        outstanding_amount=row.outstanding_amount,
        last_payment_date=row.last_payment_date,
        status=LoanStatus(row.status),
        request_id=row.request_id,
    )


def _payment(row: Row) -> PaymentRecord:
    return PaymentRecord(
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
    )


# The statements of the hot paths (payments and reads), built once. Building a
# select() and its cache key costs more CPU than PostgreSQL spends running it;
# a prebuilt statement memoizes both and only takes new parameters.
_CUSTOMER = select(customers).where(customers.c.id == bindparam("id"))
_LOAN = select(loans).where(loans.c.id == bindparam("id"))
_LOAN_FOR_UPDATE = _LOAN.with_for_update()  # ignored by SQLite, which locks the file
_PAID_THROUGH = (
    select(payments.c.last_week)
    .where(payments.c.loan_id == bindparam("loan_id"), payments.c.payment_date <= bindparam("on"))
    .order_by(payments.c.payment_date.desc(), payments.c.last_week.desc())
    .limit(1)
)
_PAYMENT_BY_KEY = select(payments).where(payments.c.idempotency_key == bindparam("key"))
# A payment's first read: the loan, and whether its idempotency key is taken.
_LOAN_AND_KEY = select(
    loans,
    select(payments.c.id)
    .where(payments.c.idempotency_key == bindparam("key"))
    .scalar_subquery()
    .label("key_payment_id"),
).where(loans.c.id == bindparam("id"))
_LOAN_AND_KEY_FOR_UPDATE = _LOAN_AND_KEY.with_for_update(of=loans)
_INSERT_PAYMENT = insert(payments).returning(payments.c.id)
_SETTLE_INSTALLMENTS = (
    update(installments)
    .where(
        installments.c.loan_id == bindparam("b_loan_id"),
        installments.c.week_number.between(bindparam("b_first"), bindparam("b_last")),
    )
    .values(paid_date=bindparam("b_paid_date"), payment_id=bindparam("b_payment_id"))
)
# Guarded by the paid_count read under the lock: a lost race updates no row.
_MOVE_BALANCE = (
    update(loans)
    .where(loans.c.id == bindparam("b_id"), loans.c.paid_count == bindparam("b_paid_before"))
    .values(
        paid_count=bindparam("b_paid_count"),
        outstanding_amount=bindparam("b_outstanding"),
        last_payment_date=bindparam("b_last_payment_date"),
        status=bindparam("b_status"),
        updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_EVENTS = insert(events)


class Repository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Customers

    def add_customer(self, name: str, email: str, phone: str, request_id: str | None) -> int:
        return self.conn.execute(
            insert(customers)
            .values(name=name, email=email, phone=phone, request_id=request_id, created_at=_now())
            .returning(customers.c.id)
        ).scalar_one()

    def get_customer(self, customer_id: int) -> CustomerRecord | None:
        row = self.conn.execute(_CUSTOMER, {"id": customer_id}).first()
        return _customer(row) if row else None

    def customer_by_request_id(self, request_id: str) -> CustomerRecord | None:
        row = self.conn.execute(
            select(customers).where(customers.c.request_id == request_id)
        ).first()
        return _customer(row) if row else None

    # Loans

    def add_loan(
        self,
        customer_id: int,
        terms: LoanTerms,
        schedule: list[Installment],
        status: LoanStatus,
        request_id: str | None,
    ) -> int:
        now = _now()
        loan_id = self.conn.execute(
            insert(loans)
            .values(
                customer_id=customer_id,
                principal_amount=terms.principal_amount,
                interest_rate_bps=terms.interest_rate_bps,
                weeks=terms.weeks,
                start_date=terms.start_date,
                currency_code=terms.currency_code,
                delinquency_threshold=terms.delinquency_threshold,
                interest_amount=terms.interest_amount,
                total_amount=terms.total_amount,
                weekly_payment=terms.weekly_payment,
                paid_count=0,
                outstanding_amount=terms.total_amount,
                last_payment_date=None,
                status=status.value,
                request_id=request_id,
                created_at=now,
                updated_at=now,
            )
            .returning(loans.c.id)
        ).scalar_one()
        self.conn.execute(
            insert(installments),
            [
                {
                    "loan_id": loan_id,
                    "week_number": i.week_number,
                    "due_date": i.due_date,
                    "amount": i.amount,
                    "principal_amount": i.principal_amount,
                    "interest_amount": i.interest_amount,
                }
                for i in schedule
            ],
        )
        return loan_id

    def get_loan(self, loan_id: int, *, for_update: bool = False) -> LoanRecord | None:
        row = self.conn.execute(_LOAN_FOR_UPDATE if for_update else _LOAN, {"id": loan_id}).first()
        return _loan(row) if row else None

    def loan_and_key(
        self, loan_id: int, idempotency_key: str, *, for_update: bool = False
    ) -> tuple[LoanRecord | None, bool]:
        """The loan (row-locked if asked), and whether a payment already holds the
        key: one statement."""
        statement = _LOAN_AND_KEY_FOR_UPDATE if for_update else _LOAN_AND_KEY
        row = self.conn.execute(statement, {"id": loan_id, "key": idempotency_key}).first()
        if row is None:
            return None, False
        return _loan(row), row.key_payment_id is not None

    def loan_by_request_id(self, request_id: str) -> LoanRecord | None:
        row = self.conn.execute(select(loans).where(loans.c.request_id == request_id)).first()
        return _loan(row) if row else None

    def list_loans(
        self,
        *,
        customer_id: int | None,
        status: LoanStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[LoanRecord]:
        """Newest first; keyset pagination on id."""
        query = select(loans).order_by(loans.c.id.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(loans.c.customer_id == customer_id)
        if status is not None:
            query = query.where(loans.c.status == status.value)
        if before_id is not None:
            query = query.where(loans.c.id < before_id)
        return [_loan(row) for row in self.conn.execute(query)]

    def installments(self, loan_id: int) -> list[InstallmentRecord]:
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
        return [InstallmentRecord(*row) for row in rows]

    def paid_count_at(self, loan_id: int, on: dt.date) -> int:
        """Installments settled by payments dated on or before `on`: one index seek."""
        last_week = self.conn.execute(
            _PAID_THROUGH, {"loan_id": loan_id, "on": on}
        ).scalar_one_or_none()
        return last_week or 0

    # Events

    def add_events(self, new_events: list[NewEvent]) -> None:
        """Writes events into the outbox, unnumbered: the sequencer numbers them after commit."""
        now = _now()
        self.conn.execute(
            _INSERT_EVENTS,
            [
                {
                    "kind": e.kind.value,
                    "loan_id": e.loan_id,
                    "customer_id": e.customer_id,
                    "week_number": e.week_number,
                    "business_date": e.business_date,
                    "created_at": now,
                    "amount": e.amount,
                    "due_date": e.due_date,
                    "missed_installments": e.missed_installments,
                    "overdue_amount": e.overdue_amount,
                    "days_past_due": e.days_past_due,
                    "outstanding_amount": e.outstanding_amount,
                    "currency_code": e.currency_code,
                    "payment_id": e.payment_id,
                }
                for e in new_events
            ],
        )

    # Payments

    def payment_by_key(self, idempotency_key: str) -> PaymentRecord | None:
        row = self.conn.execute(_PAYMENT_BY_KEY, {"key": idempotency_key}).first()
        return _payment(row) if row else None

    def record_payment(
        self,
        loan: LoanRecord,
        *,
        amount: int,
        payment_date: dt.date,
        first_week: int,
        last_week: int,
        idempotency_key: str,
        outstanding_after: int,
        status_after: LoanStatus,
        stored_status: LoanStatus,
    ) -> int:
        """Inserts the payment, marks its installments paid and moves the loan's
        balance; returns the payment's id."""
        now = _now()
        payment_id = self.conn.execute(
            _INSERT_PAYMENT,
            {
                "loan_id": loan.id,
                "amount": amount,
                "currency_code": loan.terms.currency_code,
                "payment_date": payment_date,
                "first_week": first_week,
                "last_week": last_week,
                "idempotency_key": idempotency_key,
                "outstanding_after": outstanding_after,
                "status_after": status_after.value,
                "created_at": now,
            },
        ).scalar_one()
        self.conn.execute(
            _SETTLE_INSTALLMENTS,
            {
                "b_loan_id": loan.id,
                "b_first": first_week,
                "b_last": last_week,
                "b_paid_date": payment_date,
                "b_payment_id": payment_id,
            },
        )
        updated = self.conn.execute(
            _MOVE_BALANCE,
            {
                "b_id": loan.id,
                "b_paid_before": loan.paid_count,
                "b_paid_count": last_week,
                "b_outstanding": outstanding_after,
                "b_last_payment_date": payment_date,
                "b_status": stored_status.value,
                "b_updated_at": now,
            },
        ).rowcount
        if updated != 1:
            raise RuntimeError(f"loan {loan.id} changed under its row lock")
        return payment_id

    def list_payments(
        self, loan_id: int, *, after_id: int | None, limit: int
    ) -> list[PaymentRecord]:
        """Oldest first; keyset pagination on id."""
        query = (
            select(payments)
            .where(payments.c.loan_id == loan_id)
            .order_by(payments.c.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(payments.c.id > after_id)
        return [_payment(row) for row in self.conn.execute(query)]
