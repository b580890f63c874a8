"""The books, cash basis (rules v2, "Journal"): five accounts, one balanced entry
per money movement, and each loan's balances defined from its state.

A loan's balances are a function of its state: the paid amount `A`, the interest
waived by its live payoffs, and its write-off. Every entry is the change in
them that its transaction causes, so the entries of a loan always add up to its
balances now, and reconciling the journal is a comparison (`differences`), not a
report. Amounts are debit-positive: an asset or expense account's balance is
its debits less its credits, an income account's is negative when it holds
income. An entry's amounts sum to 0: it balances.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from loanbilling.domain.loan import Loan, LoanTerms, WriteOff


class Account(enum.Enum):
    LOAN_PORTFOLIO = "LOAN_PORTFOLIO"  # asset: principal still owed
    CASH = "CASH"  # asset: cash received less principal disbursed
    INTEREST_INCOME = "INTEREST_INCOME"  # income: interest received before any write-off
    WRITE_OFF_EXPENSE = "WRITE_OFF_EXPENSE"  # expense: principal written off
    RECOVERY_INCOME = "RECOVERY_INCOME"  # income: recoveries received


ACCOUNTS: tuple[Account, ...] = tuple(Account)


class EntryKind(enum.Enum):
    LOAN_CREATED = "LOAN_CREATED"
    PAYMENT = "PAYMENT"
    PAYOFF = "PAYOFF"
    REVERSAL = "REVERSAL"
    WRITE_OFF = "WRITE_OFF"
    RECOVERY = "RECOVERY"


Balances = Mapping[Account, int]
NO_BALANCES: Balances = dict.fromkeys(ACCOUNTS, 0)


def loan_balances(
    terms: LoanTerms,
    paid_amount: int,
    waived_interest_amount: int,
    write_off: WriteOff | None,
) -> dict[Account, int]:
    """The loan's balance in each account, debit-positive, for its state: paid
    amount A, interest waived by its live payoffs w (part of A, never cash), and
    its write-off. Cash received is A - w.

    Not written off: LOAN_PORTFOLIO = P - (A - J(A)); INTEREST_INCOME = J(A) - w
    received. Written off, with A_wo = T - (what was written off) the paid amount
    at the write-off: LOAN_PORTFOLIO = 0; INTEREST_INCOME = J(A_wo) - w, the cash
    received before the write-off less the principal it repaid; WRITE_OFF_EXPENSE
    = the principal written off; RECOVERY_INCOME = A - A_wo received since.
    """
    principal = terms.principal_amount
    cash = paid_amount - waived_interest_amount
    if write_off is None:
        portfolio = principal - (paid_amount - terms.interest_part(paid_amount))
        interest = terms.interest_part(paid_amount) - waived_interest_amount
        expense = recovered = 0
    else:
        at_write_off = terms.total_amount - write_off.principal_amount - write_off.interest_amount
        portfolio = 0
        interest = terms.interest_part(at_write_off) - waived_interest_amount
        expense = write_off.principal_amount
        recovered = paid_amount - at_write_off
    return {
        Account.LOAN_PORTFOLIO: portfolio,
        Account.CASH: cash - principal,
        Account.INTEREST_INCOME: -interest,
        Account.WRITE_OFF_EXPENSE: expense,
        Account.RECOVERY_INCOME: -recovered,
    }


@dataclass(frozen=True, slots=True)
class JournalLine:
    account: Account
    debit_amount: int
    credit_amount: int


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to post: the change in the loan's balances its transaction caused."""

    loan_id: int
    entry_date: dt.date
    kind: EntryKind
    currency_code: str
    amounts: Mapping[Account, int]  # debit-positive, summing to 0
    payment_id: int | None = None

    @property
    def lines(self) -> list[JournalLine]:
        """A debit or a credit line per account it moves, in account order."""
        return [
            JournalLine(account, max(amount, 0), max(-amount, 0))
            for account, amount in self.amounts.items()
            if amount
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry(NewEntry):
    """An entry as posted: its id orders the journal."""

    id: int


def entry(
    kind: EntryKind,
    loan_id: int,
    terms: LoanTerms,
    on: dt.date,
    before: Balances,
    after: Balances,
    payment_id: int | None = None,
) -> NewEntry:
    """The entry of a transaction that moved the loan's balances from `before` to `after`."""
    amounts = {account: after[account] - before[account] for account in ACCOUNTS}
    if sum(amounts.values()) != 0:  # the balances' definition makes this impossible
        raise ValueError(f"unbalanced entry for loan {loan_id}: {amounts}")
    return NewEntry(
        loan_id=loan_id,
        entry_date=on,
        kind=kind,
        currency_code=terms.currency_code,
        amounts=amounts,
        payment_id=payment_id,
    )


def creation_entry(loan_id: int, terms: LoanTerms) -> NewEntry:
    """Disbursement: Dr LOAN_PORTFOLIO P / Cr CASH P, dated the start date."""
    return entry(
        EntryKind.LOAN_CREATED,
        loan_id,
        terms,
        terms.start_date,
        NO_BALANCES,
        loan_balances(terms, 0, 0, None),
    )


@dataclass(frozen=True, slots=True)
class Difference:
    """An account of a loan whose posted balance is not the one its state defines."""

    loan_id: int
    account: Account
    expected: int
    posted: int
    currency_code: str


def differences(
    loan_id: int, expected: Balances, posted: Balances, currency_code: str
) -> list[Difference]:
    return [
        Difference(loan_id, account, expected[account], posted.get(account, 0), currency_code)
        for account in ACCOUNTS
        if expected[account] != posted.get(account, 0)
    ]


@dataclass(frozen=True, slots=True)
class LoanBooks:
    """What reconciling one loan needs: the loan, the interest its live payoffs
    waived, and the sums of its posted entries per account."""

    loan: Loan
    waived_interest_amount: int
    posted: Balances

    def differences(self) -> list[Difference]:
        """Its accounts whose posted balance differs from the one its state defines."""
        loan = self.loan
        expected = loan_balances(
            loan.terms, loan.paid_amount, self.waived_interest_amount, loan.write_off
        )
        return differences(loan.id, expected, self.posted, loan.terms.currency_code)


# The side an account's balance is normally on: debit for assets and expenses.
DEBIT_NORMAL = frozenset({Account.LOAN_PORTFOLIO, Account.CASH, Account.WRITE_OFF_EXPENSE})


@dataclass(frozen=True, slots=True)
class TrialBalanceLine:
    account: Account
    debit_total: int
    credit_total: int

    @property
    def balance(self) -> int:
        """On the account's normal side: debits less credits for assets and
        expenses, credits less debits for income."""
        net = self.debit_total - self.credit_total
        return net if self.account in DEBIT_NORMAL else -net


@dataclass(frozen=True, slots=True)
class TrialBalance:
    as_of: dt.date
    currency_code: str
    lines: list[TrialBalanceLine]

    @property
    def debit_total(self) -> int:
        return sum(line.debit_total for line in self.lines)

    @property
    def credit_total(self) -> int:
        return sum(line.credit_total for line in self.lines)
