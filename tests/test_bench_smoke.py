"""`python -m bench --tiny` runs end to end on a fresh PostgreSQL database.

The benchmark is not a timed assertion: this only checks that every section
runs, answers without errors, and produces its table and its JSON. Timings
and their targets are for `make bench` (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import SWEEP_MIN_CALLS
from tests.support.databases import ADMIN_URL, require_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent

PHASES = {
    "health_small",
    "get_outstanding_small",
    "is_delinquent_small",
    "get_loan_small",
    "get_outstanding_paid1",
    "get_outstanding_paid520",
    "is_delinquent_paid1",
    "is_delinquent_paid520",
    "get_outstanding_paid1_past",
    "get_outstanding_paid520_past",
    "health",
    "get_outstanding_large",
    "is_delinquent_large",
    "get_loan_large",
    "payoff_quote_large",
    "trial_balance_small",
    "trial_balance_large",
    "trial_balance_idr_large",
    "make_payment",
    "pay_off_loan",
    "reverse_payment",
    "make_payment_hot",
    "create_loan",
    "list_payments",
    "make_payment_probe_0",
    "health_streams",
    "make_payment_probe_streams",
    "make_payment_probe_streams_light",
    "make_payment_before_sweep",
    "make_payment_during_sweep",
}


def test_tiny_bench_prints_the_table_and_writes_the_json(tmp_path):
    require_postgres()
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--admin-url", ADMIN_URL, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    for heading in ("| workload", "| measure", "| target (one run)"):
        assert heading in done.stdout
    for label in (
        "Health/Check no-op",
        "MakePayment, many loans",
        "CreateLoan, 50 weeks",
        "ReversePayment, payment 2 of 3",
        "GetTrialBalance, business date",
    ):
        assert label in done.stdout

    results = json.loads(out.read_text())
    # The database's limit (pgbench replaying a payment's statements), where pgbench is.
    replayed = shutil.which("pgbench") is not None
    assert set(results["phases"]) == PHASES | ({"db_payment"} if replayed else set())
    for key, phase in results["phases"].items():
        assert phase["calls"] > 0, key
        assert phase["errors"] == 0, (key, phase["error_samples"])
        assert phase["p50_ms"] <= phase["p99_ms"], key
        assert phase["vs_noop"] is not None, key
    targets = results["targets"]
    assert len(targets) == 18
    limit = "MakePayment / its statements by pgbench (the database's limit)"
    assert all(t["value"] is not None for t in targets if replayed or t["name"] != limit), targets
    if replayed:
        # Every replayed transaction wrote its payment, and the books still agree (below).
        db = results["phases"]["db_payment"]
        assert results["details"]["db_replay_payments_written"] == db["calls"] > 0
        assert "\\gset s_" in results["db_replay"]["script"]

    details = results["details"]
    assert details["streams_opened"] == results["size"]["streams"]
    assert details["sweep_loans_checked"] == details["bare_update_rows"] > 0
    assert details["events_missing_streams"] == 0
    # Payments during a sweep: sweeps run back to back until enough payments completed
    # while one ran, so the count is a property of the phase, not of the machine's speed.
    during = results["phases"]["make_payment_during_sweep"]
    assert not during["exhausted"]
    assert during["calls"] >= SWEEP_MIN_CALLS
    assert details["sweeps_under_load"] == len(during["sweeps"]) >= 1
    assert all(sweep["loans_checked"] > 0 for sweep in during["sweeps"])
    # PayOffLoan: one loan per call, never sent twice, and the group sized not to run out.
    payoff = results["phases"]["pay_off_loan"]
    assert not payoff["exhausted"]
    assert details["payoff_quotes_checked"] > 0
    assert payoff["calls"] <= details["payoff_loans_paid_after"] < details["payoff_group_loans"]
    # ReversePayment: one payment per call, never sent twice (a second reversal of one
    # would be an error above), the group sized not to run out, and a sample of the
    # reversed loans checked against the domain's live history afterwards.
    reverse = results["phases"]["reverse_payment"]
    assert not reverse["exhausted"]
    assert reverse["calls"] <= details["reverse_payments_reversed_after"]
    assert details["reverse_payments_reversed_after"] < details["reverse_group_loans"]
    assert details["reverse_loans_verified_after"] > 0
    # The journal: every seeded loan's entries, summed into ledger_totals; GetTrialBalance
    # answered what the entries sum to (checked before each stage's measurement), its
    # statements read ledger_totals only, and after every workload VerifyBooks found the
    # seeded entries and the server's postings in agreement with every loan.
    layout = results["layout"]
    assert layout["journal"] and layout["journal_entries"] > layout["loans"]
    assert 0 < layout["ledger_totals"] < layout["journal_entries"]
    for stage in ("small", "large"):
        assert details[f"trial_balance_{stage}_relations_read"] == "ledger_totals", stage
        assert details[f"trial_balance_{stage}_rows_read"] > 0, stage
    assert details["trial_balance_small_journal_entries"] < layout["journal_entries"]
    assert details["books_agree"], results.get("books_differences_sample")
    assert details["books_loans_checked"] >= layout["loans"]
    assert results["database"]["tables"]["journal_entries"]["rows"] == layout["journal_entries"]
    probe = results["phases"]["make_payment_probe_streams"]["probe"]
    assert probe["delivered"] == probe["payments"] > 0
    assert results["layout"]["loans"] == results["size"]["total_loans"]
    assert results["details"]["seed_verified_loans"] > 0
    assert results["database_url"] == "(dropped)"
    assert results["server_exit_code"] == 0
