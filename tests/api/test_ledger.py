"""LedgerService over gRPC on both databases: the journal of a loan's life, page by
page and by date, the trial balance with the canonical numbers, the books
reconciled, and precise refusals."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import ledger_service_pb2 as ledger_api
from microfin.loanbilling.v1 import ledger_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api

from tests.api.test_reversal import refused, reverse
from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, pay, pb_date, py_date

WEEK = dt.timedelta(days=7)
L = ledger_api
PORTFOLIO, CASH, INTEREST = L.ACCOUNT_LOAN_PORTFOLIO, L.ACCOUNT_CASH, L.ACCOUNT_INTEREST_INCOME


@pytest.fixture
def ledger(channel):
    return ledger_service_pb2_grpc.LedgerServiceStub(channel)


def lines(entry) -> set[tuple[int, int, int]]:
    return {(line.account, line.debit_amount, line.credit_amount) for line in entry.lines}


def trial(ledger, on: dt.date | None = None, currency: str = ""):
    request = L.GetTrialBalanceRequest(currency_code=currency)
    if on is not None:
        request.as_of.CopyFrom(pb_date(on))
    return ledger.GetTrialBalance(request)


def test_a_loans_journal(stub, ledger, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    paid = []
    for week in (1, 2, 3):
        clock.current = START + week * WEEK
        paid.append(pay(stub, loan_id, 110_000).payment.id)
    reverse(stub, paid[1])
    page = ledger.ListJournalEntries(L.ListJournalEntriesRequest(loan_id=loan_id, page_size=3))
    assert [e.kind for e in page.entries] == [
        L.JOURNAL_ENTRY_KIND_LOAN_CREATED,
        L.JOURNAL_ENTRY_KIND_PAYMENT,
        L.JOURNAL_ENTRY_KIND_PAYMENT,
    ]
    created = page.entries[0]
    assert (created.loan_id, py_date(created.entry_date), created.payment_id) == (loan_id, START, 0)
    assert created.currency_code == "IDR"
    assert lines(created) == {(PORTFOLIO, 5_000_000, 0), (CASH, 0, 5_000_000)}
    assert lines(page.entries[1]) == {
        (CASH, 110_000, 0),
        (PORTFOLIO, 0, 100_000),
        (INTEREST, 0, 10_000),
    }
    assert page.entries[1].payment_id == paid[0]
    rest = ledger.ListJournalEntries(
        L.ListJournalEntriesRequest(loan_id=loan_id, page_size=3, page_token=page.next_page_token)
    )
    assert rest.next_page_token == ""
    assert [e.kind for e in rest.entries] == [
        L.JOURNAL_ENTRY_KIND_PAYMENT,
        L.JOURNAL_ENTRY_KIND_REVERSAL,
    ]
    reversal = rest.entries[1]
    assert (reversal.payment_id, py_date(reversal.entry_date)) == (paid[1], START + 3 * WEEK)
    assert lines(reversal) == {(CASH, 0, 110_000), (PORTFOLIO, 100_000, 0), (INTEREST, 10_000, 0)}
    ids = [e.id for e in [*page.entries, *rest.entries]]
    assert ids == sorted(ids)

    # By date: the entries dated in week 2..3 of the loan.
    dated = ledger.ListJournalEntries(
        L.ListJournalEntriesRequest(
            from_date=pb_date(START + 2 * WEEK), to_date=pb_date(START + 2 * WEEK)
        )
    ).entries
    assert [e.payment_id for e in dated] == [paid[1]]


def test_the_trial_balance(stub, ledger, clock):
    loan_id = create_canonical_loan(stub, create_customer(stub), START).id
    for week in range(1, 51):
        clock.current = START + week * WEEK
        pay(stub, loan_id, 110_000)
    answer = trial(ledger)
    assert (answer.currency_code, py_date(answer.as_of)) == ("IDR", clock.current)
    balances = {line.account: line.balance for line in answer.lines}
    assert balances == {
        PORTFOLIO: 0,
        CASH: 500_000,
        INTEREST: 500_000,
        L.ACCOUNT_WRITE_OFF_EXPENSE: 0,
        L.ACCOUNT_RECOVERY_INCOME: 0,
    }
    cash = next(line for line in answer.lines if line.account == CASH)
    assert (cash.debit_total, cash.credit_total) == (5_500_000, 5_000_000)
    assert answer.debit_total == answer.credit_total == 10_500_000
    early = trial(ledger, START + 10 * WEEK)
    assert {line.account: line.balance for line in early.lines}[PORTFOLIO] == 4_000_000

    books = ledger.VerifyBooks(L.VerifyBooksRequest())
    assert (books.agree, books.loans_checked, list(books.differences)) == (True, 1, [])


def test_refusals(stub, ledger, clock):
    create_canonical_loan(stub, create_customer(stub), START)
    create_canonical_loan(stub, create_customer(stub), START, currency_code="USD")
    cases = [
        (
            ledger.ListJournalEntries,
            L.ListJournalEntriesRequest(loan_id=999),
            grpc.StatusCode.NOT_FOUND,
            "loan 999",
        ),
        (
            ledger.ListJournalEntries,
            L.ListJournalEntriesRequest(loan_id=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "loan_id",
        ),
        (
            ledger.ListJournalEntries,
            L.ListJournalEntriesRequest(from_date=pb_date(START), to_date=pb_date(START - WEEK)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "before from_date",
        ),
        (
            ledger.ListJournalEntries,
            L.ListJournalEntriesRequest(page_token="nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            ledger.ListJournalEntries,
            L.ListJournalEntriesRequest(page_size=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
        ),
        (
            ledger.GetTrialBalance,
            L.GetTrialBalanceRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "IDR, USD",
        ),
        (
            ledger.GetTrialBalance,
            L.GetTrialBalanceRequest(currency_code="usd"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "currency_code",
        ),
        (
            ledger.GetTrialBalance,
            L.GetTrialBalanceRequest(as_of={"year": 2026, "month": 2, "day": 30}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "as_of",
        ),
    ]
    for call, request, code, says in cases:
        error = refused(call, request)
        assert error.code() == code, (request, error.details())
        assert says in error.details(), error.details()
    usd = trial(ledger, currency="USD")
    assert {line.account: line.balance for line in usd.lines}[PORTFOLIO] == 5_000_000
    # A loan that exists but has no entry in the range: an empty page, not NOT_FOUND.
    assert not ledger.ListJournalEntries(
        L.ListJournalEntriesRequest(loan_id=1, to_date=pb_date(START - WEEK))
    ).entries
    assert stub.GetLoan(api.GetLoanRequest(loan_id=1)).loan.id == 1
