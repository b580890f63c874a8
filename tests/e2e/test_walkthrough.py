"""The README walkthrough, replayed with the real grpcurl against `loanbilling serve`
running as a process, on SQLite and on PostgreSQL. The commands and the expected
outputs are read from README.md itself, so the two cannot drift apart."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e import readme
from tests.e2e.processes import GRPCURL, GRPCURL_TIMEOUT_S, ServerProcess, grpcurl, migrate

SERVICE = "microfin.loanbilling.v1.LoanService"


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
    ):
        assert f"{SERVICE}/{rpc}" in rpcs, f"the README walkthrough lost its {rpc} step"
    for rpc in (
        "microfin.loanbilling.v1.NotificationService/StreamNotifications",
        "microfin.loanbilling.v1.AnalyticsService/GetPortfolioSummary",
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

        # README, "The rules as read": the stored status is evaluated at the business
        # date (today, long after 2026-02-16), not at the back-dated payment.
        stored = _call(server, "ListLoans", {"status": "LOAN_STATUS_DELINQUENT"})
        assert [item["id"] for item in stored["loans"]] == ["1"]
        assert _call(server, "ListLoans", {"status": "LOAN_STATUS_ACTIVE"}) == {}

        assert server.stop() == 0, server.log()


def _date(year: int, month: int, day: int) -> dict:
    return {"year": year, "month": month, "day": day}


def _call(server: ServerProcess, rpc: str, request: dict) -> dict:
    done = grpcurl("-plaintext", "-d", json.dumps(request), server.address, f"{SERVICE}/{rpc}")
    assert done.returncode == 0, f"{rpc}: {done.stderr}"
    return json.loads(done.stdout)
