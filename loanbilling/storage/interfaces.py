"""What the services ask of storage, in domain terms: the storage interface.

The services import this module and the domain, nothing else of storage. Two
implementations exist (loanbilling.storage.unit_of_work): the portable one,
which locks the loan row and writes a step per statement, and PostgreSQL's,
which reads unlocked and writes a whole decision in one guarded statement.
The composition root (loanbilling.server) chooses one.

Every method raises the project's own errors, never a driver's:
StorageUnavailable when the database cannot answer, DuplicateKey when a
concurrent request took a unique request key first.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from loanbilling.domain.customer import Customer, CustomerDetails
from loanbilling.domain.events import NewEvent
from loanbilling.domain.history import ReversalDecision
from loanbilling.domain.loan import Loan, LoanStatus, ScheduleEntry
from loanbilling.domain.payment import Payment
from loanbilling.domain.portfolio import PortfolioFigures


@dataclass(frozen=True, slots=True)
class PaymentSlot:
    """What a payment needs to decide: the loan, and a payment that already holds
    the idempotency key (a retry)."""

    loan: Loan | None
    earlier: Payment | None


@dataclass(frozen=True, slots=True)
class SweepBatch:
    """One bounded batch of a sweep; last_loan_id None: no loans were left."""

    last_loan_id: int | None
    loans_checked: int
    newly_delinquent: int
    events_written: int


class Customers(Protocol):
    def add(self, details: CustomerDetails, request_id: str | None) -> Customer: ...

    def get(self, customer_id: int) -> Customer | None: ...

    def by_request_id(self, request_id: str) -> Customer | None: ...


class Loans(Protocol):
    def reserve_id(self) -> int:
        """An id no other loan has or will get: events name the loan before it is written."""

    def add(self, loan: Loan, new_events: list[NewEvent]) -> bool:
        """Writes a new loan (its schedule from its terms) and its events; False,
        with nothing written, when its customer does not exist."""

    def get(self, loan_id: int) -> Loan | None: ...

    def lock(self, loan_id: int) -> Loan | None:
        """The loan, row-locked until the unit of work ends (a locking unit only)."""

    def by_request_id(self, request_id: str) -> Loan | None: ...

    def by_write_off_key(self, idempotency_key: str) -> Loan | None:
        """The loan written off by the request with this key, if any."""

    def record_write_off(self, before: Loan, after: Loan, new_events: list[NewEvent]) -> None:
        """Writes the write-off of a loan locked by `lock`, and its events."""

    def list(
        self,
        *,
        customer_id: int | None,
        status: LoanStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[Loan]:
        """Newest first; keyset pagination on id."""

    def paid_amount_at(self, loan_id: int, on: dt.date) -> int:
        """The amount paid by payments dated on or before `on` (domain:
        Loan.knows_paid_amount_at says when a read needs it)."""

    def schedule(self, loan_id: int) -> list[ScheduleEntry]: ...


class Payments(Protocol):
    def slot(self, loan_id: int, idempotency_key: str) -> PaymentSlot:
        """The loan (row-locked in a locking unit of work) and the payment holding
        the key if any."""

    def next_id(self) -> int:
        """An id no other payment has or will get, drawn once a payment is accepted
        (a refused one draws none): its events name it before it is written."""

    def record(
        self, payment: Payment, before: Loan, after: Loan, new_events: list[NewEvent]
    ) -> bool:
        """Writes the payment, the installments it settles, the loan's new state
        and the events, if the loan is still as `before` read it; False, with
        nothing written, when a concurrent write changed it (an optimistic unit
        of work only: a locking one holds the row)."""

    def by_key(self, idempotency_key: str) -> Payment | None: ...

    def get(self, payment_id: int) -> Payment | None: ...

    def of_loan(self, loan_id: int) -> list[Payment]:
        """Every recorded payment of the loan, live and reversed."""

    def by_reversal_key(self, idempotency_key: str) -> Payment | None:
        """The payment reversed by the request with this key, if any."""

    def record_reversal(self, before: Loan, decision: ReversalDecision) -> None:
        """Writes a reversal on a loan locked by `Loans.lock`: the payment marked
        reversed, the re-allocated payments and installments, the loan's new
        state and the events."""

    def list(self, loan_id: int, *, after_id: int | None, limit: int) -> list[Payment]:
        """Oldest first; keyset pagination on id."""


class UnitOfWork(Protocol):
    """One transaction: nothing it wrote is kept unless `commit` was called."""

    customers: Customers
    loans: Loans
    payments: Payments

    def commit(self) -> None: ...


class Storage(Protocol):
    """The unit-of-work factory the services are given, plus the set-based work
    that runs in the database (sweep, portfolio) in bounded statements of its own."""

    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """Reads only; on PostgreSQL in autocommit (one round trip per read)."""

    def writing(self, *, optimistic: bool) -> AbstractContextManager[UnitOfWork]:
        """A write. `optimistic`: the storage may read without locks and write a
        decision in one statement guarded by what it read, so `Payments.record`
        may answer False (then decide again in a non-optimistic unit of work).
        A storage that cannot do that locks anyway."""

    def sweep_batch(
        self,
        *,
        as_of: dt.date,
        after_loan_id: int,
        batch_size: int,
        reminder_days: int,
    ) -> SweepBatch:
        """Sweeps the next `batch_size` unpaid loans with an id above
        `after_loan_id`, in one short transaction (domain: loanbilling.domain.sweep)."""

    def portfolio(self, as_of: dt.date, currency_code: str) -> PortfolioFigures:
        """The loans in `currency_code` started by `as_of`, as they stood at its
        end (domain: loanbilling.domain.portfolio)."""
