"""The database's own limit for a payment: its exact statements, replayed by pgbench.

`capture` pays one installment through the service's own code (BillingService on
the PostgreSQL storage, in this process, no gRPC) and records every statement it
sends, with its parameters. `Replay` turns them into a pgbench script: the same
SQL text, each `%(name)s` a pgbench variable, run with prepared statements
(`-M prepared`) at the load's concurrency. Per transaction: the slot read (its
row stored with \\gset), the id draw, the one CTE, with what varies from payment to
payment (the loan, its paid amount, the week, the new id, a fresh key) derived
as the domain would, and every other parameter the captured payment's own
value. So MakePayment's calls/s over the replay's is the share of PostgreSQL's
capacity the service reaches; the rest is the Python server and gRPC.

Each pgbench client pays its own loans (loan index = client_id mod clients) in
turn, one installment each time: no two clients touch one loan, as in the
MakePayment workload. The sequencer's numbering of events after commit is the
server's background work, not a payment's statement: it is not replayed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import TICKS, stat_fields

# How each varying parameter follows from the slot read (\gset prefix s_) and the
# per-transaction variables below; a parameter the script does not know stops the
# bench, so that a change of the payment's statements is never replayed wrong.
LOAN = ":loan_id"
VARYING = {
    # The slot read.
    "id": LOAN,
    "key": ":key",
    # The CTE: the loan's UPDATE guarded by what was read.
    "loan_id": LOAN,
    "paid_before": ":s_paid_amount",
    "status_before": ":s_status",
    "version_before": ":s_history_version",
    "version": ":s_history_version",
    "paid_amount": ":paid_after",
    "paid_count": ":week",
    "outstanding": ":outstanding_after",
    "status": ":s_status",
    "first_week": ":week",
    "last_week": ":week",
    # The payment's row.
    "p_id": ":payment_id",
    "p_loan_id": LOAN,
    "p_first_week": ":week",
    "p_last_week": ":week",
    "p_idempotency_key": ":key",
    "p_outstanding_after": ":outstanding_after",
    "p_status_after": ":s_status",
    "p_paid_amount_after": ":paid_after",
    # Its event.
    "e0_loan_id": LOAN,
    "e0_customer_id": ":s_customer_id",
    "e0_week_number": ":week",
    "e0_outstanding_amount": ":outstanding_after",
    "e0_payment_id": ":payment_id",
    "e0_history_version": ":s_history_version",
    # Its journal entry and the day's totals row.
    "j_loan_id": LOAN,
    "j_payment_id": ":payment_id",
    "t_shard": ":shard",
}
# Parameters that are the same for every payment of the replay (their captured value).
CONSTANT = re.compile(
    r"(pg_get_serial_sequence_\d|now|last_payment_date|p_(amount|currency_code|payment_date|"
    r"principal_amount|interest_amount|kind|waived_interest_amount|created_at)|"
    r"e0_(kind|business_date|amount|due_date|missed_installments|overdue_amount|"
    r"days_past_due|currency_code|created_at)|j_(entry_date|kind|currency_code|loan_portfolio|"
    r"cash|interest_income|write_off_expense|recovery_income|created_at)|t_.*)$"
)
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, object]


def capture(database_url: str, loan_id: int, today: dt.date) -> list[Statement]:
    """The statements one MakePayment of `loan_id`'s next installment sends."""
    from sqlalchemy import event

    from loanbilling.clock import FixedClock
    from loanbilling.services.billing import BillingService
    from loanbilling.storage.database import make_engine
    from loanbilling.storage.unit_of_work import sql_storage

    engine = make_engine(database_url)
    try:
        billing = BillingService(sql_storage(engine), FixedClock(today))
        weekly = billing.get_loan(loan_id).loan.terms.weekly_payment
        seen: list[Statement] = []

        def record(conn, cursor, statement, parameters, context, executemany) -> None:
            seen.append(Statement(statement, dict(parameters or {})))

        event.listen(engine, "before_cursor_execute", record)
        billing.make_payment(loan_id=loan_id, amount=weekly, idempotency_key="dblimit-capture")
        event.remove(engine, "before_cursor_execute", record)
        return seen
    finally:
        engine.dispose()


def _literal(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@dataclass
class ReplayResult:
    transactions: int
    failed: int
    latency_ms: list[float]
    window_s: float
    elapsed_s: float
    pg_cpu_s: float
    pgbench_cpu_s: float


class Replay:
    """A pgbench script paying installments of loans lo..lo+count-1 by `clients`."""

    def __init__(
        self, statements: list[Statement], *, lo: int, count: int, clients: int, shards: int
    ) -> None:
        if count < clients:
            raise ValueError(f"the replay needs a loan per client: {count} < {clients}")
        self.clients = clients
        self.defines: dict[str, str] = {"n": "0"}
        lines = [
            f"\\set loan_id {lo} + ((:n * {clients} + :client_id) % {count - count % clients})",
            "\\set n :n + 1",
            "\\set key random(1, 9000000000000000000)",
        ]
        for i, statement in enumerate(statements):
            lines += self._statement(i, statement, shards)
        self.script = "\n".join(lines) + "\n"
        self.pgbench = shutil.which("pgbench")
        self._postmaster_pid: int | None = None

    def _postmaster(self, database_url: str) -> int:
        if self._postmaster_pid is None:
            self._postmaster_pid = _postmaster_pid(database_url)
        return self._postmaster_pid

    def _statement(self, index: int, statement: Statement, shards: int) -> list[str]:
        names = PLACEHOLDER.findall(statement.sql)
        unknown = sorted({n for n in names if n not in VARYING and not CONSTANT.match(n)})
        if unknown:
            raise RuntimeError(
                f"bench/dblimit.py cannot replay parameters {unknown} of a payment's "
                "statement: add them to VARYING or CONSTANT"
            )
        for name in names:
            if name not in VARYING:
                self.defines[f"c_{name}"] = _literal(statement.params[name])
        sql = PLACEHOLDER.sub(
            lambda m: VARYING.get(m.group(1), f":c_{m.group(1)}"), statement.sql.strip()
        )
        sql = " ".join(sql.split())  # pgbench reads one statement a line
        if index == 0:  # the slot read: the loan's row, as the server reads it
            return [sql + " \\gset s_"]
        if "nextval" in sql:
            return [sql + " \\gset", "\\set payment_id :nextval_1"]
        return [
            "\\set week :s_paid_count + 1",
            "\\set paid_after :s_paid_amount + :s_weekly_payment",
            "\\set outstanding_after :s_total_amount - :paid_after",
            f"\\set shard :loan_id % {shards}",
            sql,
        ]

    def run(self, database_url: str, seconds: float) -> ReplayResult:
        """pgbench for `seconds` (whole seconds, at least 1), every transaction's latency."""
        if self.pgbench is None:
            raise RuntimeError("pgbench not found: install PostgreSQL's client tools")
        seconds = max(1, round(seconds))
        with tempfile.TemporaryDirectory(prefix="lb-dblimit-") as work:
            script = Path(work, "payment.sql")
            script.write_text(self.script)
            command = [
                self.pgbench,
                "--no-vacuum",
                "--protocol=prepared",
                f"--client={self.clients}",
                f"--jobs={min(self.clients, os.cpu_count() or 1)}",
                f"--time={seconds}",
                "--log",
                f"--log-prefix={work}/tx",
                f"--file={script}",
                *(f"--define={k}={v}" for k, v in self.defines.items()),
                _libpq_url(database_url),
            ]
            postmaster = self._postmaster(database_url)
            pg_before = _children_cpu_s(postmaster)
            children_before = os.times()
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=work)
            elapsed = time.perf_counter() - started
            children_after = os.times()
            time.sleep(0.2)  # until the postmaster has reaped pgbench's backends
            pg_used = _children_cpu_s(postmaster) - pg_before
            if done.returncode != 0:
                raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-2000:]}")
            latencies = []
            for log in Path(work).glob("tx*"):
                for line in log.read_text().splitlines():
                    latencies.append(int(line.split()[2]) / 1000)
        failed = int(_field(done.stdout, r"number of failed transactions: (\d+)", "0"))
        return ReplayResult(
            transactions=len(latencies),
            failed=failed,
            latency_ms=latencies,
            window_s=float(seconds),
            elapsed_s=elapsed,
            pg_cpu_s=pg_used,
            pgbench_cpu_s=(children_after.children_user + children_after.children_system)
            - (children_before.children_user + children_before.children_system),
        )


def _field(text: str, pattern: str, default: str) -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else default


def _libpq_url(database_url: str) -> str:
    """postgresql+psycopg2://... as libpq takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", database_url)


def _postmaster_pid(database_url: str) -> int:
    import psycopg2

    conn = psycopg2.connect(_libpq_url(database_url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            (backend,) = cur.fetchone()
        return int(stat_fields(backend)[1])  # its parent: the postmaster
    finally:
        conn.close()


def _children_cpu_s(pid: int) -> float:
    """CPU seconds of `pid`'s children that have exited (the backends of pgbench's
    connections, reaped by the postmaster once they closed)."""
    fields = stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / TICKS if fields else 0.0
