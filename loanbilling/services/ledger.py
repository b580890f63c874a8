"""The ledger's use cases: the journal, the trial balance, the reconciliation of the
books with the loans (the rules: loanbilling.domain.journal). Read-only: every
entry is posted by the write of its movement (services.billing)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from loanbilling.clock import BusinessClock
from loanbilling.domain.errors import InvalidArgument, NotFound
from loanbilling.domain.journal import (
    ACCOUNTS,
    Difference,
    JournalEntry,
    TrialBalance,
    TrialBalanceLine,
)
from loanbilling.domain.loan import DEFAULT_CURRENCY
from loanbilling.services import pagination
from loanbilling.services.billing import Page
from loanbilling.services.currencies import check_currency
from loanbilling.storage.interfaces import Storage

RECONCILE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class BooksReport:
    """What VerifyBooks found: loans checked, and each difference (loan 0: the
    maintained totals against the entries)."""

    loans_checked: int
    differences: list[Difference]

    @property
    def agree(self) -> bool:
        return not self.differences


class LedgerService:
    def __init__(self, storage: Storage, clock: BusinessClock) -> None:
        self.storage = storage
        self.clock = clock

    def list_entries(
        self,
        *,
        loan_id: int = 0,
        from_date: dt.date | None = None,
        to_date: dt.date | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[JournalEntry]:
        if loan_id < 0:
            raise InvalidArgument.of("loan_id", "must be a positive id, or 0 for all loans")
        if from_date is not None and to_date is not None and to_date < from_date:
            raise InvalidArgument.of("to_date", f"{to_date} is before from_date {from_date}")
        limit = pagination.page_size(page_size)
        after_id = pagination.decode_token(page_token)
        with self.storage.reading() as uow:
            if loan_id and uow.loans.get(loan_id) is None:
                raise NotFound("loan", loan_id)
            found = uow.journal.list(
                loan_id=loan_id or None,
                from_date=from_date,
                to_date=to_date,
                after_id=after_id,
                limit=limit + 1,
            )
        token = pagination.encode_token(found[limit - 1].id) if len(found) > limit else ""
        return Page(found[:limit], token)

    def entries_between(self, from_date: dt.date, to_date: dt.date) -> Iterator[JournalEntry]:
        """Every entry dated from_date..to_date, in posting order, page by page (the
        export). The range is checked, and the first page read, before it returns."""

        def page(token: str) -> Page[JournalEntry]:
            return self.list_entries(
                from_date=from_date,
                to_date=to_date,
                page_size=pagination.MAX_PAGE_SIZE,
                page_token=token,
            )

        def pages(first: Page[JournalEntry]) -> Iterator[JournalEntry]:
            current = first
            while True:
                yield from current.items
                if not current.next_page_token:
                    return
                current = page(current.next_page_token)

        return pages(page(""))

    def trial_balance(self, as_of: dt.date | None = None, currency_code: str = "") -> TrialBalance:
        """Each account's totals over the entries dated on or before `as_of`
        (default today), in one currency: the one named, else the only one the
        books hold (IDR when they hold none)."""
        if currency_code:
            check_currency(currency_code)
        as_of = as_of or self.clock.today()
        with self.storage.reading() as uow:
            if currency_code:
                code = currency_code
            else:
                held = uow.journal.currencies(as_of)
                if len(held) > 1:
                    raise InvalidArgument.of(
                        "currency_code",
                        f"the books hold entries in {', '.join(held)} by {as_of}: name one; "
                        "amounts of different currencies are never added",
                    )
                code = held[0] if held else DEFAULT_CURRENCY
            totals = uow.journal.trial_balance(as_of, code)
        return TrialBalance(as_of, code, [TrialBalanceLine(a, *totals[a]) for a in ACCOUNTS])

    def verify_books(self, batch_size: int = RECONCILE_BATCH) -> BooksReport:
        """Every loan's balances recomputed from its state against the sums of its
        entries, in batches of loans (one short read each), then the maintained
        totals against the entries."""
        checked, found = 0, []
        after = 0
        while True:
            # One snapshot a batch: a payment committing between the reads of a
            # loan's state and of its entries would look like a difference.
            with self.storage.reading(consistent=True) as uow:
                batch = uow.journal.loan_books(after, batch_size)
            if not batch:
                break
            for books in batch:
                found += books.differences()
            checked += len(batch)
            after = batch[-1].loan.id
        with self.storage.reading(consistent=True) as uow:
            for code, account, entries_net, totals_net in uow.journal.totals_differences():
                found.append(Difference(0, account, entries_net, totals_net, code))
        return BooksReport(checked, found)
