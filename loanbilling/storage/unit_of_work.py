"""The storage the services are given: units of work over SQLAlchemy connections.

Two write strategies implement one interface (loanbilling.storage.interfaces):

- portable (SQLite, and PostgreSQL when asked): every write is a transaction
  that locks the loan row on its first read, then writes a statement per step;
- one statement (PostgreSQL): an optimistic unit of work reads without locks in
  autocommit and writes a whole decision in one guarded statement; when the
  guard finds the loan changed, the service decides again in a locking unit of
  work, which writes the same one statement under the row lock.

The composition root (loanbilling.server) picks one with `sql_storage`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from loanbilling.domain.portfolio import PortfolioFigures
from loanbilling.storage import portfolio, sweep
from loanbilling.storage.database import WRITE_OPTION, autocommit, snapshot, transaction
from loanbilling.storage.errors import translated
from loanbilling.storage.interfaces import SweepBatch
from loanbilling.storage.journal import SqlJournal
from loanbilling.storage.one_statement import OneStatementLoans, OneStatementPayments
from loanbilling.storage.repository import SqlCustomers, SqlLoans, SqlPayments


class SqlUnitOfWork:
    def __init__(self, conn: Connection, *, locking: bool, one_statement: bool) -> None:
        self.conn = conn
        self.customers = SqlCustomers(conn)
        loans, payments = (
            (OneStatementLoans, OneStatementPayments) if one_statement else (SqlLoans, SqlPayments)
        )
        self.loans = loans(conn)
        self.payments = payments(conn, locking=locking)
        self.journal = SqlJournal(conn)
        self.committed = False

    def commit(self) -> None:
        """Keeps what the unit wrote: its transaction commits as the block ends
        (an autocommit unit's one statement has committed already)."""
        self.committed = True


class SqlStorage:
    def __init__(self, engine: Engine, *, one_statement: bool) -> None:
        if one_statement and engine.dialect.name != "postgresql":
            raise ValueError("one-statement writes need PostgreSQL")
        self.engine = engine
        self.one_statement = one_statement

    @contextmanager
    def reading(self, *, consistent: bool = False) -> Iterator[SqlUnitOfWork]:
        reads = snapshot(self.engine) if consistent else transaction(self.engine, write=False)
        with translated(), reads as conn:
            yield SqlUnitOfWork(conn, locking=False, one_statement=False)

    @contextmanager
    def writing(self, *, optimistic: bool) -> Iterator[SqlUnitOfWork]:
        with translated():
            if optimistic and self.one_statement:
                # Every statement commits as it returns; the decision is one statement.
                with autocommit(self.engine) as conn:
                    yield SqlUnitOfWork(conn, locking=False, one_statement=True)
                return
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin() as tx:
                    uow = SqlUnitOfWork(conn, locking=True, one_statement=self.one_statement)
                    yield uow
                    if not uow.committed:
                        tx.rollback()

    def sweep_batch(
        self, *, as_of: dt.date, after_loan_id: int, batch_size: int, reminder_days: int
    ) -> SweepBatch:
        with translated():
            return sweep.sweep_batch(
                self.engine,
                as_of=as_of,
                after_loan_id=after_loan_id,
                batch_size=batch_size,
                reminder_days=reminder_days,
            )

    def portfolio(self, as_of: dt.date, currency_code: str) -> PortfolioFigures:
        with translated():
            return portfolio.portfolio_summary(self.engine, as_of, currency_code)


def sql_storage(engine: Engine, *, one_statement: bool | None = None) -> SqlStorage:
    """The storage for `engine`: one-statement writes on PostgreSQL unless told otherwise."""
    if one_statement is None:
        one_statement = engine.dialect.name == "postgresql"
    return SqlStorage(engine, one_statement=one_statement)
