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
from loanbilling.domain.journal import Account, JournalEntry, LoanBooks, NewEntry
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

    def add(self, loan: Loan, new_events: list[NewEvent], entry: NewEntry) -> bool:
        """Writes a new loan (its schedule from its terms), its events and its
        journal entry; False, with nothing written, when its customer does not exist."""

    def get(self, loan_id: int) -> Loan | None: ...

    def lock(self, loan_id: int) -> Loan | None:
        """The loan, row-locked until the unit of work ends (a locking unit only)."""

    def by_request_id(self, request_id: str) -> Loan | None: ...

    def by_write_off_key(self, idempotency_key: str) -> Loan | None:
        """The loan written off by the request with this key, if any."""

    def record_write_off(
        self, before: Loan, after: Loan, new_events: list[NewEvent], entry: NewEntry
    ) -> None:
        """Writes the write-off of a loan locked by `lock`, its events and its entry."""

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
        self,
        payment: Payment,
        before: Loan,
        after: Loan,
        new_events: list[NewEvent],
        entry: NewEntry,
    ) -> bool:
        """Writes the payment, the installments it settles, the loan's new state,
        the events and the journal entry, if the loan is still as `before` read it; False, with
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
        state, the events and the journal entry."""

    def list(self, loan_id: int, *, after_id: int | None, limit: int) -> list[Payment]:
        """Oldest first; keyset pagination on id."""


class Journal(Protocol):
    """The ledger's reads. Entries are posted by the writes of their movements
    (Loans.add, Payments.record, record_reversal, record_write_off), never alone."""

    def list(
        self,
        *,
        loan_id: int | None,
        from_date: dt.date | None,
        to_date: dt.date | None,
        after_id: int | None,
        limit: int,
    ) -> list[JournalEntry]:
        """In posting order (id); keyset pagination on id."""

    def trial_balance(self, as_of: dt.date, currency_code: str) -> dict[Account, tuple[int, int]]:
        """(debit total, credit total) per account over the entries dated by `as_of`,
        from the maintained totals."""

    def currencies(self, as_of: dt.date) -> list[str]:
        """The currencies of the entries dated by `as_of`."""

    def loan_books(self, after_loan_id: int, limit: int) -> list[LoanBooks]:
        """The next loans by id, each with what reconciling it needs."""

    def totals_differences(self) -> list[tuple[str, Account, int, int]]:
        """(currency, account, entries' net, totals' net) where the maintained
        totals differ from the entries."""


class UnitOfWork(Protocol):
    """One transaction: nothing it wrote is kept unless `commit` was called."""

    customers: Customers
    loans: Loans
    payments: Payments
    journal: Journal

    def commit(self) -> None: ...


class Storage(Protocol):
    """The unit-of-work factory the services are given, plus the set-based work
    that runs in the database (sweep, portfolio) in bounded statements of its own."""

    def reading(self, *, consistent: bool = False) -> AbstractContextManager[UnitOfWork]:
        """Reads only; on PostgreSQL in autocommit (one round trip per read).
        `consistent`: every read sees one snapshot (a read-only repeatable-read
        transaction), for reads that combine present state from several statements."""

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
