"""docs/billing-rules.md says what the domain computes.

The page is for readers who never open the code; its tables and the payoff
worked example are read here and recomputed with `loanbilling.domain`, so a
rule change that forgets the page fails the suite.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from loanbilling.domain.loan import LoanTerms, PayoffInterest, Position
from loanbilling.domain.payoff import PayoffAmountRefused, check_payoff_amount, payoff_quote

PAGE = Path(__file__).resolve().parents[2] / "docs" / "billing-rules.md"
START = dt.date(2026, 1, 5)


def _section(title: str) -> str:
    text = PAGE.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{PAGE.name} has no section '## {title}'"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows[2:]]  # past the header and its rule


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def canonical(**overrides) -> LoanTerms:
    return LoanTerms.create(
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=START,
        **overrides,
    )


def test_the_canonical_loan_table():
    terms = canonical()
    table = {row[0]: row[1] for row in _table_rows(_section("The canonical loan"))}
    assert _int(table["interest `I`"]) == terms.interest_amount
    assert _int(table["total repayable `T`"]) == terms.total_amount
    installment = terms.installment(1)
    assert table["every installment"] == (
        f"{installment.amount:,} = {installment.principal_amount:,} principal + "
        f"{installment.interest_amount:,} interest"
    )
    due = table["installment `k` due"]
    assert f"week 1 on {terms.due_date(1)}" in due
    assert f"week 50 on {terms.due_date(50)}" in due
    assert terms.last_due_date == terms.due_date(50)
    assert all(terms.installment(k).amount == installment.amount for k in range(1, 51))


@pytest.mark.parametrize("paid", [0, 110_000, 1_100_000, 5_390_000, 5_500_000])
def test_j_is_a_floor_of_an_eleventh_on_the_canonical_loan(paid):
    # The table's `J(x) = floor(x / 11)`.
    assert canonical().interest_part(paid) == paid // 11


def test_the_time_table_with_nothing_paid():
    terms = canonical()
    rows = _table_rows(_section("Time: due, overdue, missed"))
    assert len(rows) >= 5
    for date_cell, due_before, missed, overdue, days, status in rows:
        on = dt.date.fromisoformat(date_cell.split()[0])
        position = Position(terms, 0, on)
        assert terms.weeks_due_before(on) == int(due_before), date_cell
        assert position.missed_installments == int(missed), date_cell
        assert position.overdue_amount == _int(overdue), date_cell
        assert position.days_past_due == int(days), date_cell
        assert position.status.name == status, date_cell


def test_the_payoff_worked_example():
    section = _section("Payoff")
    example = section[section.index("**Worked example**") :]
    waive = canonical(payoff_interest=PayoffInterest.WAIVE_UNDUE)
    paid = waive.amount_through(10)  # weeks 1-10 paid on their due dates
    quote = payoff_quote(waive, paid, dt.date(2026, 3, 18))
    full = payoff_quote(canonical(), paid, dt.date(2026, 3, 18))
    next_week = payoff_quote(waive, paid, dt.date(2026, 3, 24))
    stated = [
        f"`A` = {paid:,}",
        f"so\n{quote.waived_interest_amount:,} of interest is waived",
        f"the payoff is {quote.payoff_amount:,} = {quote.principal_amount:,}\nprincipal + "
        f"{quote.interest_amount:,} interest",
        f"Under `FULL` the payoff is {full.payoff_amount:,} ({full.principal_amount:,}\n+ "
        f"{full.interest_amount:,})",
        f"it is {next_week.payoff_amount:,} with {next_week.waived_interest_amount:,} waived",
        f"Dr `CASH` {quote.payoff_amount:,} / Cr `LOAN_PORTFOLIO`\n{quote.principal_amount:,}, "
        f"Cr `INTEREST_INCOME` {quote.interest_amount:,}",
    ]
    for phrase in stated:
        assert phrase in example, f"{PAGE.name}'s payoff example no longer says {phrase!r}"
    # The quote holds through week 11's due date, not a day later.
    assert payoff_quote(waive, paid, waive.due_date(11)).payoff_amount == quote.payoff_amount
    assert (
        payoff_quote(waive, paid, waive.due_date(11) + dt.timedelta(days=1)).payoff_amount
        == next_week.payoff_amount
    )
    with pytest.raises(PayoffAmountRefused) as refused:
        check_payoff_amount(quote, full.payoff_amount)
    quoted = re.search(r'refused: "(.*?)"', example, re.S).group(1).replace("\n", " ")
    assert quoted in str(refused.value.message)
