"""LedgerService: converts, delegates to the LedgerService use cases (where `run`
runs them; verifying the books on a worker thread), converts back."""

from __future__ import annotations

from microfin.loanbilling.v1 import ledger_service_pb2 as api
from microfin.loanbilling.v1 import ledger_service_pb2_grpc

from loanbilling.api import convert
from loanbilling.api.auth import Role
from loanbilling.api.edge import OPEN, Edge, unary
from loanbilling.api.runners import Run
from loanbilling.domain.journal import Account, EntryKind, JournalEntry
from loanbilling.services.ledger import LedgerService

ACCOUNT_TO_PB = {account: api.Account.Value(f"ACCOUNT_{account.value}") for account in Account}
ENTRY_KIND_TO_PB = {
    kind: api.JournalEntryKind.Value(f"JOURNAL_ENTRY_KIND_{kind.value}") for kind in EntryKind
}


def entry_to_pb(entry: JournalEntry) -> api.JournalEntry:
    return api.JournalEntry(
        id=entry.id,
        loan_id=entry.loan_id,
        entry_date=convert.date_to_pb(entry.entry_date),
        kind=ENTRY_KIND_TO_PB[entry.kind],
        payment_id=entry.payment_id or 0,
        currency_code=entry.currency_code,
        lines=[
            api.JournalLine(
                account=ACCOUNT_TO_PB[line.account],
                debit_amount=line.debit_amount,
                credit_amount=line.credit_amount,
            )
            for line in entry.lines
        ],
    )


class LedgerServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(
        self,
        ledger: LedgerService,
        run: Run,
        edge: Edge = OPEN,
        *,
        books: LedgerService,
        run_bulk: Run,
    ) -> None:
        self.ledger = ledger
        self._run = run
        # VerifyBooks reads every loan: bulk work, on a thread (`run_bulk`) and the
        # storage of the threads (`books`).
        self._books = books
        self._run_bulk = run_bulk
        self.edge = edge

    @unary(Role.READER)
    async def ListJournalEntries(self, request: api.ListJournalEntriesRequest, context):
        page = await self._run(
            self.ledger.list_entries,
            loan_id=request.loan_id,
            from_date=convert.date_from_pb(request, "from_date"),
            to_date=convert.date_from_pb(request, "to_date"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.ListJournalEntriesResponse(
            entries=[entry_to_pb(e) for e in page.items], next_page_token=page.next_page_token
        )

    @unary(Role.READER)
    async def GetTrialBalance(self, request: api.GetTrialBalanceRequest, context):
        balance = await self._run(
            self.ledger.trial_balance,
            as_of=convert.date_from_pb(request, "as_of"),
            currency_code=request.currency_code,
        )
        return api.GetTrialBalanceResponse(
            as_of=convert.date_to_pb(balance.as_of),
            currency_code=balance.currency_code,
            lines=[
                api.TrialBalanceLine(
                    account=ACCOUNT_TO_PB[line.account],
                    debit_total=line.debit_total,
                    credit_total=line.credit_total,
                    balance=line.balance,
                )
                for line in balance.lines
            ],
            debit_total=balance.debit_total,
            credit_total=balance.credit_total,
        )

    @unary(Role.ADMIN)
    async def VerifyBooks(self, request: api.VerifyBooksRequest, context):
        report = await self._run_bulk(self._books.verify_books)
        return api.VerifyBooksResponse(
            loans_checked=report.loans_checked,
            differences=[
                api.BooksDifference(
                    loan_id=d.loan_id,
                    account=ACCOUNT_TO_PB[d.account],
                    expected_amount=d.expected,
                    posted_amount=d.posted,
                    currency_code=d.currency_code,
                )
                for d in report.differences
            ],
            agree=report.agree,
        )
