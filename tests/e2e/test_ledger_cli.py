"""`loanbilling verify-books` and `loanbilling export-journal` as a finance team or a
cron job runs them: processes on SQLite and PostgreSQL, against books written by
the service."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import update

from loanbilling.clock import FixedClock
from loanbilling.services.billing import BillingService
from loanbilling.storage.database import make_engine
from loanbilling.storage.tables import loans
from loanbilling.storage.unit_of_work import sql_storage
from tests.e2e.processes import run_cli
from tests.support.api import lend_canonical

pytestmark = pytest.mark.timeout(120)

START = dt.date(2026, 1, 5)
WEEK = dt.timedelta(days=7)
HEADER = [
    "entry_id",
    "entry_date",
    "loan_id",
    "kind",
    "payment_id",
    "currency_code",
    "account",
    "debit_amount",
    "credit_amount",
]


@pytest.fixture
def books(database_url):
    """The canonical loan: weeks 1-2 paid, the second payment reversed, then paid again."""
    engine = make_engine(database_url)
    try:
        clock = FixedClock(START + 2 * WEEK)
        billing = BillingService(sql_storage(engine), clock)
        customer = billing.create_customer(name="Siti", email="siti@example.com", phone="")
        loan = lend_canonical(billing, customer.id, START)
        billing.make_payment(
            loan_id=loan.id, amount=110_000, payment_date=START + WEEK, idempotency_key="w1"
        )
        second = billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="w2")
        billing.reverse_payment(
            payment_id=second.payment.id, reason="bounced", idempotency_key="undo"
        )
        billing.make_payment(loan_id=loan.id, amount=110_000, idempotency_key="w2-again")
        yield engine, loan.id
    finally:
        engine.dispose()


def test_verify_books_exits_0_when_the_books_agree_and_1_with_the_differences(books, database_url):
    engine, loan_id = books
    done = run_cli("verify-books", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"loans_checked": 1, "agree": True, "differences": []}

    with engine.begin() as conn:  # a loan's state changed behind the books' back
        conn.execute(update(loans).where(loans.c.id == loan_id).values(paid_amount=330_000))
    done = run_cli("verify-books", "--database-url", database_url)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["agree"] is False
    cash = next(d for d in report["differences"] if d["account"] == "CASH")
    assert cash == {
        "loan_id": loan_id,
        "account": "CASH",
        "expected": 330_000 - 5_000_000,
        "posted": 220_000 - 5_000_000,
        "currency_code": "IDR",
    }
    assert "differ" in done.stderr


def test_export_journal_writes_a_row_per_line(books, database_url, tmp_path):
    _, loan_id = books
    done = run_cli(
        "export-journal",
        "--database-url",
        database_url,
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == HEADER
    lines = [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]
    kinds = [(line["kind"], line["account"]) for line in lines]
    assert kinds == [
        ("LOAN_CREATED", "LOAN_PORTFOLIO"),
        ("LOAN_CREATED", "CASH"),
        *(("PAYMENT", account) for account in ("LOAN_PORTFOLIO", "CASH", "INTEREST_INCOME")),
        *(("PAYMENT", account) for account in ("LOAN_PORTFOLIO", "CASH", "INTEREST_INCOME")),
        *(("REVERSAL", account) for account in ("LOAN_PORTFOLIO", "CASH", "INTEREST_INCOME")),
        *(("PAYMENT", account) for account in ("LOAN_PORTFOLIO", "CASH", "INTEREST_INCOME")),
    ]
    # Every entry balances; the money columns are whole units.
    by_entry: dict[str, int] = {}
    for line in lines:
        debit, credit = int(line["debit_amount"]), int(line["credit_amount"])
        assert (debit > 0) != (credit > 0)
        by_entry[line["entry_id"]] = by_entry.get(line["entry_id"], 0) + debit - credit
    assert set(by_entry.values()) == {0}
    assert {line["loan_id"] for line in lines} == {str(loan_id)}
    reversal = [line for line in lines if line["kind"] == "REVERSAL"]
    assert {
        (line["account"], line["debit_amount"], line["credit_amount"]) for line in reversal
    } == {
        ("LOAN_PORTFOLIO", "100000", "0"),
        ("INTEREST_INCOME", "10000", "0"),
        ("CASH", "0", "110000"),
    }

    # A range that holds only the creation; into a file.
    out = tmp_path / "journal.csv"
    done = run_cli(
        "export-journal",
        "--database-url",
        database_url,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-11",
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    written = list(csv.reader(out.open(newline="")))
    assert [row[3] for row in written[1:]] == ["LOAN_CREATED", "LOAN_CREATED"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", "2026-02-01", "--to", "2026-01-01"), "to_date: 2026-01-01 is before from_date"),
        (("--from", "January", "--to", "2026-01-01"), "is not a date like"),
        (("--to", "2026-01-01"), "--from"),
    ],
)
def test_export_journal_refuses_bad_ranges(database_url, args, says):
    done = run_cli("export-journal", "--database-url", database_url, *args)
    assert done.returncode == 2
    assert says in done.stderr
    assert done.stdout == ""
