"""The outbox as the events layer uses it, on one engine: reads of numbered
events, numbering, consumer cursors, leadership and NOTIFY. The composition
root hands these to loanbilling.events, which never sees an engine.

Every call blocks (a short transaction or a connection of its own): the events
layer runs them on worker threads. A database out of reach raises
StorageUnavailable (a stream then ends UNAVAILABLE), never a driver's error.
"""

from __future__ import annotations

from sqlalchemy import Engine

from loanbilling.domain.events import Event, EventFilter
from loanbilling.storage import event_store, numbering
from loanbilling.storage.consumer_cursors import ConsumerCursor
from loanbilling.storage.database import in_transaction, is_postgresql
from loanbilling.storage.errors import translated
from loanbilling.storage.leader_lock import LeaderLock, leader_lock
from loanbilling.storage.notifications import ANONYMOUS, ListenConnection
from loanbilling.storage.numbering import Numbered


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # PostgreSQL announces every numbering with NOTIFY (`listen`).
        self.notifies = is_postgresql(engine)

    def last_sequence(self) -> int:
        with translated():
            return in_transaction(self.engine, event_store.last_sequence)

    def events_after(
        self,
        after_sequence: int,
        *,
        limit: int,
        up_to: int | None = None,
        only: EventFilter | None = None,
    ) -> list[Event]:
        """Numbered events with sequence in (after_sequence, up_to], oldest first."""
        with translated():
            return in_transaction(
                self.engine,
                event_store.events_after,
                after_sequence,
                limit=limit,
                up_to=up_to,
                only=only,
            )

    def filter_subjects(
        self, *, loan_id: int | None, customer_id: int | None
    ) -> tuple[int | None, bool]:
        """For a stream's filter: the customer of loan `loan_id` (None: no such
        loan, or none named), and whether customer `customer_id` exists (True when
        none is named). One read by primary key (event_store.filter_subjects)."""
        with translated():
            return in_transaction(
                self.engine, event_store.filter_subjects, loan_id, customer_id
            )

    def number_all(self, *, origin: str = ANONYMOUS) -> Numbered:
        """Numbers every pending event (loanbilling.storage.numbering)."""
        with translated():
            return numbering.number_all(self.engine, origin=origin)

    def cursor(self, name: str) -> ConsumerCursor:
        return ConsumerCursor(self.engine, name)

    def leader_lock(self, name: str, *, application_name: str) -> LeaderLock:
        return leader_lock(self.engine, name, application_name=application_name)

    def listen(self) -> ListenConnection:
        """A connection LISTENing for numberings (PostgreSQL only)."""
        return ListenConnection(self.engine)
