"""The README walkthrough, replayed with the real grpcurl against `loanbilling serve`
running as a process, on SQLite and on PostgreSQL. The commands and the expected
outputs are read from README.md itself, so the two cannot drift apart."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e import readme
from tests.e2e.processes import (
    GRPCURL,
    GRPCURL_TIMEOUT_S,
    ServerProcess,
    clean_env,
    grpcurl,
    migrate,
    run_cli,
)

SERVICE = "microfin.loanbilling.v1.LoanService"
LEDGER = "microfin.loanbilling.v1.LedgerService"
ACCOUNTING = Path(__file__).resolve().parents[2] / "docs" / "accounting.md"
DEBIT_NORMAL = {"LOAN_PORTFOLIO", "CASH", "WRITE_OFF_EXPENSE"}


def test_readme_walkthrough_is_complete():
    steps = readme.walkthrough_steps()
    rpcs = [step.rpc for step in steps]
    assert rpcs[0] == "list"
    for rpc in (
        "CreateCustomer",
        "CreateLoan",
        "MakePayment",
        "GetOutstanding",
        "IsDelinquent",
        "RunDelinquencySweep",
        "GetPayoffQuote",
        "PayOffLoan",
        "ReversePayment",
        "ListPayments",
        "WriteOffLoan",
    ):
        assert f"{SERVICE}/{rpc}" in rpcs, f"the README walkthrough lost its {rpc} step"
    for rpc in (
        "microfin.loanbilling.v1.NotificationService/StreamNotifications",
        "microfin.loanbilling.v1.AnalyticsService/GetPortfolioSummary",
        f"{LEDGER}/GetTrialBalance",
        f"{LEDGER}/ListJournalEntries",
        f"{LEDGER}/VerifyBooks",
    ):
        assert rpc in rpcs, f"the README walkthrough lost its {rpc} step"
    kinds = {step.kind for step in steps}
    assert kinds == {"text", "json", "json trimmed", "json stream trimmed"}
    assert any(step.expected.startswith("ERROR:") for step in steps)
    assert any('"replayed": true' in step.expected for step in steps)


@pytest.mark.timeout(180)
def test_readme_walkthrough(empty_database_url, tmp_path):
    migrate(empty_database_url, cwd=tmp_path)
    with ServerProcess(empty_database_url, tmp_path) as server:
        for step in readme.walkthrough_steps():
            argv = step.argv(str(GRPCURL), server.address)
            done = subprocess.run(
                [argv[0], "-max-time", "20", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=GRPCURL_TIMEOUT_S,
            )
            readme.check_output(step, done.returncode, done.stdout, done.stderr)

        # What the walkthrough implies but does not show: the refused payment and
        # the replay recorded nothing, and the past reads stay as they were.
        payments = _call(server, "ListPayments", {"loan_id": 1})["payments"]
        assert [(p["amount"], p["settled_week_numbers"]) for p in payments] == [
            ("110000", [1]),
            ("110000", [2]),
            ("220000", [3, 4]),
        ]
        after = _call(server, "GetOutstanding", {"loan_id": 1, "as_of": _date(2026, 2, 3)})
        assert after["outstanding_amount"] == "5060000"
        assert after["status"] == "LOAN_STATUS_ACTIVE"
        before = _call(server, "GetOutstanding", {"loan_id": 1, "as_of": _date(2026, 1, 19)})
        assert before["outstanding_amount"] == "5280000"
        loan = _call(server, "GetLoan", {"loan_id": 1, "as_of": _date(2026, 2, 3)})["loan"]
        assert len(loan["schedule"]) == 50
        assert {line["amount"] for line in loan["schedule"]} == {"110000"}
        assert [line["status"] for line in loan["schedule"][:5]] == [
            "INSTALLMENT_STATUS_PAID"
        ] * 4 + ["INSTALLMENT_STATUS_UNPAID"]

        # The payoff story: the refused amount recorded nothing; the two payments of
        # loan 2 carry all of its principal, and its interest with the waiver.
        payoff = _call(server, "ListPayments", {"loan_id": 2})["payments"]
        assert [(p["amount"], p["kind"]) for p in payoff] == [
            ("1100000", "PAYMENT_KIND_REGULAR"),
            ("4010000", "PAYMENT_KIND_PAYOFF"),
        ]
        assert payoff[1]["settled_week_numbers"] == list(range(11, 51))
        assert sum(int(p["principal_amount"]) for p in payoff) == 5_000_000
        waived = int(payoff[1]["waived_interest_amount"])
        assert sum(int(p["interest_amount"]) for p in payoff) + waived == 500_000
        earlier = _call(server, "GetOutstanding", {"loan_id": 2, "as_of": _date(2026, 3, 17)})
        assert earlier["outstanding_amount"] == "4400000"

        # The correction story: the reversed payment settles nothing at any date; the
        # payment made again settles week 1 from its own date on.
        corrected = _call(server, "ListPayments", {"loan_id": 3})["payments"]
        assert [(p["id"], p.get("reversed", False)) for p in corrected] == [
            ("6", True),
            ("7", False),
        ]
        assert "settled_week_numbers" not in corrected[0]
        loan = _call(server, "GetLoan", {"loan_id": 3, "as_of": _date(2026, 1, 16)})["loan"]
        assert loan["schedule"][0]["paid_date"] == _date(2026, 1, 16)
        assert loan["outstanding_amount"] == "5390000"
        at_12 = _call(server, "GetOutstanding", {"loan_id": 3, "as_of": _date(2026, 1, 12)})
        assert at_12["outstanding_amount"] == "5500000"

        # The write-off story: DELINQUENT the day before, WRITTEN_OFF from its date on;
        # its amounts stay those of the write-off after the recovery.
        def status_of(loan_id: int, on: dict) -> str:
            return _call(server, "GetOutstanding", {"loan_id": loan_id, "as_of": on})["status"]

        assert status_of(4, _date(2026, 3, 1)) == "LOAN_STATUS_DELINQUENT"
        assert status_of(4, _date(2026, 3, 2)) == "LOAN_STATUS_WRITTEN_OFF"
        written_off = _call(server, "GetLoan", {"loan_id": 4})["loan"]
        assert written_off["status"] == "LOAN_STATUS_WRITTEN_OFF"
        assert written_off["outstanding_amount"] == "5000000"
        assert written_off["written_off_principal_amount"] == "5000000"
        assert written_off["written_off_interest_amount"] == "500000"
        recoveries = _call(server, "ListPayments", {"loan_id": 4})["payments"]
        assert [(p["amount"], p["kind"]) for p in recoveries] == [
            ("500000", "PAYMENT_KIND_RECOVERY")
        ]

        # README, "Events and notifications": the new kinds, one event each here.
        events = _stream(
            server,
            {
                "after_sequence": 0,
                "customer_id": 1,
                "kinds": [
                    "EVENT_KIND_PAYMENT_REVERSED",
                    "EVENT_KIND_LOAN_REOPENED",
                    "EVENT_KIND_LOAN_WRITTEN_OFF",
                ],
            },
        )
        assert [(e["kind"], e["loan_id"], e.get("payment_id"), e["amount"]) for e in events] == [
            ("EVENT_KIND_PAYMENT_REVERSED", "3", "6", "110000"),
            ("EVENT_KIND_LOAN_WRITTEN_OFF", "4", None, "5500000"),
        ]
        assert events[1]["business_date"] == _date(2026, 3, 2)

        # README, "The rules as read": the stored status is evaluated at the business
        # date (today, long after 2026-02-16), not at the back-dated payment.
        stored = _call(server, "ListLoans", {"status": "LOAN_STATUS_DELINQUENT"})
        assert [item["id"] for item in stored["loans"]] == ["3", "1"]  # newest first
        stored = _call(server, "ListLoans", {"status": "LOAN_STATUS_WRITTEN_OFF"})
        assert [item["id"] for item in stored["loans"]] == ["4"]
        assert _call(server, "ListLoans", {"status": "LOAN_STATUS_ACTIVE"}) == {}

        # README, "Events and notifications": the `loanbilling sweep` example is the
        # walkthrough's database swept from cron, beside the running server.
        args, printed = readme.sweep_cli_example()
        done = run_cli(*args, "--database-url", empty_database_url, env=clean_env(), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == printed

        _check_the_books(server, empty_database_url, tmp_path)

        assert server.stop() == 0, server.log()


def _check_the_books(server: ServerProcess, database_url: str, cwd: Path) -> None:
    """README, "The books" and "Ledger and accounting", and docs/accounting.md: what
    the walkthrough's journal implies beyond the outputs shown."""
    shown = _ledger(server, "GetTrialBalance", {"as_of": _date(2026, 3, 18)})
    # Nothing is dated after 2026-03-18: today's trial balance is the one shown.
    today = _ledger(server, "GetTrialBalance", {})
    assert {**today, "as_of": shown["as_of"]} == shown
    # The refused calls, the replays and the sweeps posted nothing: one entry per
    # movement, each balanced.
    entries = _ledger(server, "ListJournalEntries", {"page_size": 100})["entries"]
    kinds: dict[str, list[str]] = {}
    for entry in entries:
        kinds.setdefault(entry["loan_id"], []).append(
            entry["kind"].removeprefix("JOURNAL_ENTRY_KIND_")
        )
        debits = sum(int(line.get("debit_amount", 0)) for line in entry["lines"])
        credits = sum(int(line.get("credit_amount", 0)) for line in entry["lines"])
        assert debits == credits > 0, entry
    assert kinds == {
        "1": ["LOAN_CREATED", "PAYMENT", "PAYMENT", "PAYMENT"],
        "2": ["LOAN_CREATED", "PAYMENT", "PAYOFF"],
        "3": ["LOAN_CREATED", "PAYMENT", "REVERSAL", "PAYMENT"],
        "4": ["LOAN_CREATED", "WRITE_OFF", "RECOVERY"],
    }
    # The next page of loan 3's entries: the payment made again, the last one.
    page = _ledger(
        server, "ListJournalEntries", {"loan_id": 3, "page_size": 3, "page_token": "azE6MTA="}
    )
    assert [(e["id"], e["kind"], e["payment_id"]) for e in page["entries"]] == [
        ("11", "JOURNAL_ENTRY_KIND_PAYMENT", "7")
    ]
    assert "next_page_token" not in page
    # At 2026-01-13 the journal still counts payment 6 (reversed on 01-14); the
    # loan reads of that date do not.
    before = _ledger(server, "GetTrialBalance", {"as_of": _date(2026, 1, 13)})
    assert _balances(before) == {
        "LOAN_PORTFOLIO": 19_800_000,
        "CASH": -19_780_000,
        "INTEREST_INCOME": 20_000,
        "WRITE_OFF_EXPENSE": 0,
        "RECOVERY_INCOME": 0,
    }
    loan_3 = _call(server, "GetOutstanding", {"loan_id": 3, "as_of": _date(2026, 1, 13)})
    assert loan_3["outstanding_amount"] == "5500000"

    # The ledger commands' examples, on the walkthrough's database.
    args, printed = readme.cli_example("verify-books")
    done = run_cli(*args, "--database-url", database_url, env=clean_env(), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(printed)
    args, printed = readme.cli_example("export-journal")
    done = run_cli(*args, "--database-url", database_url, env=clean_env(), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == printed.splitlines()
    # docs/accounting.md shows the same March.
    assert _accounting_csv_sample() == printed.splitlines()
    # docs/accounting.md's pivot: an export from before the first start to a date,
    # summed by account, is the trial balance at that date.
    done = run_cli(
        "export-journal",
        "--from",
        "2000-01-01",
        "--to",
        "2026-03-18",
        "--database-url",
        database_url,
        env=clean_env(),
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    pivot: dict[str, list[int]] = {}
    for row in csv.DictReader(io.StringIO(done.stdout)):
        assert row["currency_code"] == "IDR"
        sums = pivot.setdefault(row["account"], [0, 0])
        sums[0] += int(row["debit_amount"])
        sums[1] += int(row["credit_amount"])
    assert {
        line["account"].removeprefix("ACCOUNT_"): [
            int(line.get("debit_total", 0)),
            int(line.get("credit_total", 0)),
        ]
        for line in shown["lines"]
    } == pivot
    assert {
        account: debit - credit if account in DEBIT_NORMAL else credit - debit
        for account, (debit, credit) in pivot.items()
    } == _balances(shown)


def _balances(trial: dict) -> dict[str, int]:
    return {
        line["account"].removeprefix("ACCOUNT_"): int(line.get("balance", 0))
        for line in trial["lines"]
    }


def _accounting_csv_sample() -> list[str]:
    """The CSV block of docs/accounting.md (its header line first)."""
    for match in readme.FENCE.finditer(ACCOUNTING.read_text()):
        if match.group(1).strip() == "text" and match.group(2).startswith("entry_id,"):
            return match.group(2).splitlines()
    raise AssertionError("docs/accounting.md: no CSV sample")


def _ledger(server: ServerProcess, rpc: str, request: dict) -> dict:
    done = grpcurl("-plaintext", "-d", json.dumps(request), server.address, f"{LEDGER}/{rpc}")
    assert done.returncode == 0, f"{rpc}: {done.stderr}"
    return json.loads(done.stdout)


def _date(year: int, month: int, day: int) -> dict:
    return {"year": year, "month": month, "day": day}


def _stream(server: ServerProcess, request: dict) -> list[dict]:
    """The stored events a notification stream replays (it is ended by -max-time)."""
    done = grpcurl(
        "-plaintext",
        "-max-time",
        "2",
        "-d",
        json.dumps(request),
        server.address,
        "microfin.loanbilling.v1.NotificationService/StreamNotifications",
    )
    assert done.returncode in (0, 68), f"StreamNotifications: {done.stderr}"
    return [message["event"] for message in readme.json_values(done.stdout)]


def _call(server: ServerProcess, rpc: str, request: dict) -> dict:
    done = grpcurl("-plaintext", "-d", json.dumps(request), server.address, f"{SERVICE}/{rpc}")
    assert done.returncode == 0, f"{rpc}: {done.stderr}"
    return json.loads(done.stdout)
