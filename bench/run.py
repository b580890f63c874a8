"""The benchmark run: seed, serve, drive, measure, report. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.type import date_pb2
from microfin.loanbilling.v1 import loan_service_pb2, loan_service_pb2_grpc

from bench import dblimit, profile, report, seed
from bench.procs import BIN, Sampler, Server, Worker, cpu_s, rss_kb, tree_cpu_s
from bench.sizes import (
    DEFAULT,
    FULL,
    INTERLEAVED_ROUNDS,
    INTERLEAVED_WARMUP_MAX_S,
    TINY,
    Size,
)
from bench.stats import ratio, summarize
from loanbilling.storage.posting import LEDGER_SHARDS

MB = 1024
PROFILE_RATE_HZ = 250
LIGHT_CONCURRENCY = 4
# Payments measured during sweeps: sweeps go on until this many completed (errors included).
SWEEP_MIN_CALLS = 100
SWEEP_MAX_S = 600.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark `loanbilling serve` on PostgreSQL with a seeded portfolio.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="1,000,000 loans, 15 s per workload")
    size.add_argument("--tiny", action="store_true", help="a smoke run of seconds (tests)")
    parser.add_argument("--concurrency", type=int, help="concurrent callers (default 32)")
    parser.add_argument("--duration-s", type=float, help="measured seconds per workload")
    parser.add_argument("--warmup-s", type=float, help="unmeasured seconds before each")
    parser.add_argument("--loans", type=int, help="loans in the large database")
    parser.add_argument("--filler-weeks", type=int, help="term of the filler loans (default 10)")
    parser.add_argument("--streams", type=int, help="StreamNotifications subscribers (1000)")
    parser.add_argument(
        "--database-url",
        help="an empty, existing PostgreSQL database to use (kept); default: a fresh "
        "lb_bench_<id> database on --admin-url, dropped at the end",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("LOANBILLING_BENCH_ADMIN_URL", seed.DEFAULT_ADMIN_URL),
        help="PostgreSQL URL allowed to CREATE/DROP DATABASE (default: %(default)s)",
    )
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `loanbilling serve` argument, repeatable (e.g. --server-arg=--db-pool-size=16)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the run, profile the server with py-spy under some workloads into this folder",
    )
    parser.add_argument(
        "--client-channels",
        type=int,
        default=1,
        help="connections the load client spreads the no-op and the reads over (default 1; "
        "more for `--server-arg=--workers=N`, which spreads connections, not calls)",
    )
    parser.add_argument(
        "--server-command",
        default=None,
        help="run the server with this command instead of the `loanbilling` script, for A/B "
        'trials of server changes (e.g. "python my_patched_loanbilling.py"); it gets '
        "`serve --database-url ... --listen ...`",
    )
    parser.add_argument(
        "--profile-modes",
        default="gil,all",
        help="py-spy runs per workload: gil (only the GIL holder), all (every active thread), "
        "native (--gil --native: Cython/C frames too; pauses the process)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run: reads,history,unary,ledger,streams,sweep "
        "(default all)",
    )
    return parser


def machine() -> dict:
    info = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    root = Path(__file__).resolve().parent.parent
    try:
        git = ["git", "-C", str(root)]
        info["git_commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        # The server measured is the working tree: say so when it differs from the commit.
        info["git_uncommitted"] = subprocess.run(
            [*git, "status", "--porcelain", "--", "loanbilling", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")[:-1]
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    for package in ("grpcio", "protobuf", "sqlalchemy", "psycopg2-binary"):
        try:
            info[package] = version(package)
        except Exception:  # noqa: BLE001 - informational only
            pass
    return info


class Bench:
    def __init__(self, url: str, size: Size, args: argparse.Namespace, workdir: Path) -> None:
        self.url = url
        self.size = size
        self.args = args
        self.workdir = workdir
        self.today = dt.datetime.now(dt.UTC).date()
        self.replay: dblimit.Replay | None = None  # made at its first slice
        self.sections = {s for s in args.only.split(",") if s} or {
            "reads",
            "history",
            "unary",
            "ledger",
            "streams",
            "sweep",
        }
        self.results: dict = {
            "command": "python -m bench " + shlex.join(sys.argv[1:]),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "size": {
                "name": size.name,
                **{k: v for k, v in vars(size).items() if k != "name"},
            },
            "machine": machine(),
            "phases": {},
            "details": {},
            "targets": [],
        }
        self.server: Server | None = None
        self.client: Worker | None = None
        self.sampler: Sampler | None = None
        self.db_loans = 0
        self.baseline: float | None = None
        self.admin = None  # a connection of the bench's own, for pg_stat_activity and checks

    # Plumbing

    def log(self, message: str) -> None:
        print(
            f"[bench {time.strftime('%H:%M:%S')}] {message}",
            file=sys.stderr,
            flush=True,
        )

    def query(self, sql: str, params=None):
        with self.admin.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def pg_cpu(self) -> dict[int, float]:
        pids = self.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {pid: cpu_s(pid) for (pid,) in pids}

    def wait_sequenced(self, timeout: float = 600) -> None:
        """Until the server's sequencer has numbered every event written so far."""
        deadline = time.monotonic() + timeout
        while self.query("SELECT count(*) FROM pending_events")[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError("events still unnumbered: is the sequencer stuck?")
            time.sleep(0.1)

    def head(self) -> int:
        self.wait_sequenced()
        return self.query("SELECT last_sequence FROM event_sequence WHERE id = 1")[0][0]

    def group(self, name: str) -> seed.Group:
        return self.layout.groups[name]

    # Measuring one workload

    def _command(self, workload: dict, **options) -> dict:
        return {
            "op": "run",
            "workload": workload,
            "concurrency": options.pop("concurrency", self.size.concurrency),
            "warmup_s": options.pop("warmup_s", self.size.warmup_s),
            "duration_s": options.pop("duration_s", self.size.duration_s),
            **options,
        }

    def measure(self, key: str, label: str, workload: dict, **options) -> dict:
        before = self._cpu()
        self.client.send(self._command(workload, **options))
        result = self.client.receive()
        return self._record(key, label, workload, result, *self._cpu_used(before))

    def measure_interleaved(
        self, items: list[tuple[str, str, dict]], rounds: int = INTERLEAVED_ROUNDS, **options
    ) -> list[dict]:
        """Measures several workloads in alternating slices (A B C C B A ...), so that a
        drift of the machine's load (other processes) weighs on all of them alike."""
        duration = options.pop("duration_s", self.size.duration_s)
        warmup = options.pop("warmup_s", min(self.size.warmup_s, INTERLEAVED_WARMUP_MAX_S))
        slot = max(duration / rounds, 0.2)
        acc: dict[str, dict] = {key: {"lat": [], "window": 0.0, "runs": []} for key, _, _ in items}
        for r in range(rounds):
            for key, _label, workload in items if r % 2 == 0 else reversed(items):
                if workload["rpc"] == "db_replay":
                    result, used, elapsed = self._replay_slice(slot)
                else:
                    before = self._cpu()
                    command = self._command(
                        workload, warmup_s=warmup, duration_s=slot, raw=True, **options
                    )
                    self.client.send(command)
                    result = self.client.receive()
                    if "failed" in result:
                        raise RuntimeError(f"{key}: the client failed: {result['failed']}")
                    used, elapsed = self._cpu_used(before)
                a = acc[key]
                a["lat"] += result.pop("raw")["latency_ms"]
                a["window"] += result["window_s"]
                a["runs"].append((result, used, elapsed))
        phases = []
        for key, label, workload in items:
            a = acc[key]
            runs = a["runs"]
            errors: collections.Counter = collections.Counter()
            outcomes: collections.Counter = collections.Counter()
            samples: dict = {}
            used = {"server": 0.0, "pg": 0.0, "client": 0.0}
            elapsed = 0.0
            for result, run_used, run_elapsed in runs:
                errors.update(result["errors_by_code"])
                outcomes.update(result["outcomes"])
                samples.update(result["error_samples"])
                for name in used:
                    used[name] += run_used[name]
                elapsed += run_elapsed
            combined = summarize(a["lat"], a["window"], sum(errors.values()))
            combined.update(
                errors_by_code=dict(errors),
                error_samples=samples,
                outcomes=dict(outcomes),
                exhausted=any(r["exhausted"] for r, _, _ in runs),
                client_cpu_s=round(sum(r["client_cpu_s"] for r, _, _ in runs), 3),
                elapsed_s=round(elapsed, 3),
                window_start=runs[0][0]["window_start"],
                window_end=runs[-1][0]["window_end"],
                slices=len(runs),
            )
            phases.append(self._record(key, label, workload, combined, used, elapsed))
        return phases

    def _db_limit(self) -> list[tuple[str, str, dict]]:
        """The database's limit for MakePayment, where pgbench is installed."""
        if shutil.which("pgbench") is None:
            self.log("no pgbench on PATH: MakePayment's database limit is not measured")
            return []
        return [
            (
                "db_payment",
                "MakePayment's statements, pgbench (the database's limit)",
                {"rpc": "db_replay"},
            )
        ]

    def _replay_slice(self, seconds: float) -> tuple[dict, dict, float]:
        """One slice of the database's limit: pgbench replaying a payment's statements
        (bench/dblimit.py), in the client's result shape. Its PostgreSQL CPU is what
        the backends of pgbench's connections used (counted once they exited);
        "client" is pgbench's own."""
        if self.replay is None:
            group = self.group("replay")
            statements = dblimit.capture(self.url, group.hi, self.today)
            self.replay = dblimit.Replay(
                statements,
                lo=group.lo,
                count=group.count - 1,  # the last one paid the captured payment
                clients=self.size.concurrency,
                shards=LEDGER_SHARDS,
            )
            self.results["db_replay"] = {
                "script": self.replay.script,
                "defines": self.replay.defines,
            }
        server_before = tree_cpu_s(self.server.pid)
        wall = time.time()
        done = self.replay.run(self.url, seconds)
        if done.failed:
            raise RuntimeError(f"the replay's pgbench had {done.failed} failed transactions")
        result = {
            "raw": {"latency_ms": done.latency_ms},
            "window_s": done.window_s,
            "errors_by_code": {},
            "outcomes": {"replayed": done.transactions},
            "error_samples": {},
            "exhausted": False,
            "client_cpu_s": round(done.pgbench_cpu_s, 3),
            "window_start": wall,
            "window_end": wall + done.elapsed_s,
        }
        used = {
            "server": tree_cpu_s(self.server.pid) - server_before,
            "pg": done.pg_cpu_s,
            "client": done.pgbench_cpu_s,
        }
        return result, used, done.elapsed_s

    def _cpu(self) -> dict:
        return {
            "server": tree_cpu_s(self.server.pid),
            "client": cpu_s(self.client.pid),
            "pg": self.pg_cpu(),
            "t": time.perf_counter(),
        }

    def _cpu_used(self, before: dict) -> tuple[dict, float]:
        after = self._cpu()
        pg = sum(cpu - before["pg"].get(pid, 0.0) for pid, cpu in after["pg"].items())
        used = {
            "server": after["server"] - before["server"],
            "pg": pg,
            "client": after["client"] - before["client"],
        }
        return used, after["t"] - before["t"]

    def _record(
        self,
        key: str,
        label: str,
        workload: dict,
        result: dict,
        used: dict,
        elapsed: float,
    ) -> dict:
        if "failed" in result:
            raise RuntimeError(f"{label}: the client failed: {result['failed']}")
        phase = {
            "label": label,
            "db_loans": self.db_loans,
            "workload": workload,
            **result,
        }
        phase["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
        rate = result["calls_per_s"]
        for name, seconds in used.items():
            phase[f"{name}_cpu_cores"] = round(seconds / elapsed, 3)
            phase[f"{name}_cpu_ms_per_call"] = (
                round(seconds / elapsed / rate * 1000, 3) if rate else None
            )
        phase["server_rss_max_mb"] = round(
            self.sampler.max_kb(result["window_start"], result["window_end"]) / MB, 1
        )
        if workload["rpc"] == "health" and result["calls_per_s"]:
            self.baseline = result["calls_per_s"]
        phase["vs_noop"] = ratio(rate, self.baseline) if workload["rpc"] != "health" else 1.0
        self.results["phases"][key] = phase
        samples = f" {result['error_samples']}" if phase["errors"] else ""
        self.log(
            f"{label}: {rate:,.0f} calls/s, p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, "
            f"errors {phase['errors']}{samples}"
        )
        return phase

    # The run

    def run(self) -> dict:
        s = self.size
        t0 = time.perf_counter()
        self.log(f"database {seed.make_url(self.url).database}: migrating and seeding stage A")
        seed.migrate(self.url)
        seeder = seed.Seeder(self.url, self.today)
        self.layout = seeder.layout
        seeder.seed_small(s.read_loans, s.history_loans)
        self.db_loans = self.layout.loans
        checked = seeder.verify()
        self.admin = seed.connect(self.url, autocommit=True)
        command = shlex.split(self.args.server_command) if self.args.server_command else None
        self.server = Server(self.url, self.workdir, self.args.server_arg, command).start()
        self.sampler = Sampler(self.server.pid)
        self.client = Worker("bench.client", self.server.address, str(self.args.client_channels))
        self.results["details"]["server_rss_idle_mb"] = round(rss_kb(self.server.pid) / MB, 1)
        try:
            self._stage_a()
            self.log(f"seeding stage B: {s.total_loans:,} loans")
            seeder.seed_large(
                s.pay_loans,
                s.hot_loans,
                s.payoff_loans,
                s.reverse_loans,
                s.replay_loans,
                s.total_loans,
                s.filler_weeks,
            )
            self.db_loans = self.layout.loans
            checked += seeder.verify()
            self.results["details"]["seed_verified_loans"] = checked
            self.results["layout"] = self.layout.to_json()
            self.results["seed_timings_s"] = {k: round(v, 2) for k, v in seeder.timings.items()}
            self.results["database"] = seed.database_size(self.url)
            self._stage_b()
            if self._ledger():
                self._verify_books()
            if self.args.profile:
                self._profile(self.args.profile)
        finally:
            seeder.close()
            self.client.close()
            self.sampler.stop()
            code = self.server.stop()
            self.results["server_exit_code"] = code
            self.results["server_log_tail"] = self.server.log()[-2000:]
        self.results["elapsed_s"] = round(time.perf_counter() - t0, 1)
        self.results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self._targets()
        return self.results

    def _all_loans(self) -> list[list[int]]:
        return [[1, self.db_loans]]

    def _unpaid_loans(self) -> list[list[int]]:
        """Loans no workload pays, none of them paid off: `read`, `paid1`, the filler."""
        names = ("read", "paid1", "filler")
        return [self.group(n).ids() for n in names if n in self.layout.groups]

    def _check_quotes(self, per_group: int = 4) -> int:
        """A FULL-payoff loan's quote is its outstanding (T - A), nothing waived:
        checks it on a few of the loans GetPayoffQuote is measured on."""
        channel = grpc.insecure_channel(self.server.address)
        stub = loan_service_pb2_grpc.LoanServiceStub(channel)
        checked = 0
        try:
            for lo, hi in self._unpaid_loans():
                for loan_id in sorted({lo, (lo + hi) // 2, hi})[:per_group]:
                    quote = stub.GetPayoffQuote(
                        loan_service_pb2.GetPayoffQuoteRequest(loan_id=loan_id), timeout=30
                    )
                    owed = stub.GetOutstanding(
                        loan_service_pb2.GetOutstandingRequest(loan_id=loan_id), timeout=30
                    ).outstanding_amount
                    if (
                        quote.payoff_amount != owed
                        or quote.waived_interest_amount != 0
                        or quote.principal_amount + quote.interest_amount != owed
                    ):
                        raise RuntimeError(f"loan {loan_id}: outstanding {owed}, quote {quote}")
                    checked += 1
        finally:
            channel.close()
        return checked

    def _reads(self, stage: str) -> list[tuple[str, str, dict]]:
        read = self.group("read")
        return [
            (
                f"get_outstanding_{stage}",
                f"GetOutstanding, random loan ({stage})",
                {"rpc": "get_outstanding", "ids": self._all_loans()},
            ),
            (
                f"is_delinquent_{stage}",
                f"IsDelinquent, random loan ({stage})",
                {"rpc": "is_delinquent", "ids": self._all_loans()},
            ),
            (
                f"get_loan_{stage}",
                f"GetLoan, 50 installments ({stage})",
                {"rpc": "get_loan", "ids": [read.ids()]},
            ),
        ]

    def _stage_a(self) -> None:
        group = [("health_small", "Health/Check no-op (small)", {"rpc": "health"})]
        if "reads" in self.sections:
            group += self._reads("small")
        group += self._trial_balance("small")
        self.measure_interleaved(group)
        if "history" in self.sections:
            one, all_ = self.group("paid1"), self.group("paid520")
            # A date before each loan's latest payment: the read seeks its payments.
            past = {
                1: (one.start + dt.timedelta(days=3)).isoformat(),
                520: (all_.start + dt.timedelta(days=7 * 260 + 3)).isoformat(),
            }
            for rpc, name, as_of in (
                ("get_outstanding", "GetOutstanding", False),
                ("is_delinquent", "IsDelinquent", False),
                ("get_outstanding", "GetOutstanding as_of before last payment", True),
            ):
                pair = []
                for group, paid in ((one, 1), (all_, 520)):
                    workload = {"rpc": rpc, "ids": [group.ids()]}
                    if as_of:
                        workload["as_of"] = past[paid]
                    key = f"{rpc}_paid{paid}" + ("_past" if as_of else "")
                    pair.append((key, f"{name}, 520-week loan, {paid} paid", workload))
                self.measure_interleaved(pair, rounds=4)

    def _stage_b(self) -> None:
        pay = self.group("pay")
        pay_spec = {"rpc": "pay", "loans": pay.ids(), "weeks": pay.weeks}
        payoff = self.group("payoff")
        reverse = self.group("reverse")
        group = [("health", "Health/Check no-op (large)", {"rpc": "health"})]
        if "reads" in self.sections:
            group += self._reads("large")
            self.results["details"]["payoff_quotes_checked"] = self._check_quotes()
            group.append(
                (
                    "payoff_quote_large",
                    "GetPayoffQuote, random loan (large)",
                    {"rpc": "payoff_quote", "ids": self._unpaid_loans()},
                )
            )
        group += self._trial_balance("large")
        if "unary" in self.sections:
            group += [
                ("make_payment", "MakePayment, many loans", pay_spec),
                *self._db_limit(),
                (
                    "pay_off_loan",
                    "PayOffLoan, many loans",
                    {
                        "rpc": "pay_off",
                        "loans": payoff.ids(),
                        "weeks": payoff.weeks,
                        "paid": payoff.paid,
                    },
                ),
                (
                    "reverse_payment",
                    f"ReversePayment, payment {seed.REVERSED_WEEK} of {reverse.paid} (middle)",
                    {
                        "rpc": "reverse",
                        "loans": reverse.ids(),
                        "first_payment_id": reverse.first_payment_id,
                        "paid": reverse.paid,
                        "week": seed.REVERSED_WEEK,
                        "outstanding_after": seed.REVERSE_OUTSTANDING_AFTER,
                    },
                ),
                (
                    "create_loan",
                    "CreateLoan, 50 weeks",
                    {
                        "rpc": "create_loan",
                        "customers": [1, self.group("paid520").hi],
                        "weeks": 50,
                    },
                ),
            ]
        self.measure_interleaved(group)
        if self.replay is not None:
            # Every replayed transaction paid: the replay measured writes, not misses.
            replay = self.group("replay")
            self.results["details"]["db_replay_payments_written"] = self.query(
                "SELECT count(*) FROM payments WHERE loan_id BETWEEN %s AND %s "
                "AND idempotency_key <> 'dblimit-capture'",
                (replay.lo, replay.hi),
            )[0][0]
        if "unary" in self.sections:
            details = self.results["details"]
            details["payoff_group_loans"] = payoff.count
            details["payoff_loans_paid_after"] = self.query(
                "SELECT count(*) FROM loans WHERE id BETWEEN %s AND %s AND status = 'PAID'",
                (payoff.lo, payoff.hi),
            )[0][0]
            if self.results["phases"]["pay_off_loan"]["exhausted"]:
                self.log(
                    f"PayOffLoan ran out of its {payoff.count:,} loans: "
                    "raise payoff_calls_per_s in bench/sizes.py"
                )
            details["reverse_group_loans"] = reverse.count
            reversed_, checked = seed.verify_reversals(self.admin, reverse, self.today)
            details["reverse_payments_reversed_after"] = reversed_
            details["reverse_loans_verified_after"] = checked
            if self.results["phases"]["reverse_payment"]["exhausted"]:
                self.log(
                    f"ReversePayment ran out of its {reverse.count:,} loans: "
                    "raise reverse_calls_per_s in bench/sizes.py"
                )
            hot = self.group("hot")
            self.measure(
                "make_payment_hot",
                f"MakePayment, hot loans ({self.size.hot_slots} at a time)",
                {
                    "rpc": "pay_hot",
                    "loans": hot.ids(),
                    "weeks": hot.weeks,
                    "hot": self.size.hot_slots,
                },
            )
            self.measure(
                "list_payments",
                "ListPayments, 18 payments",
                {"rpc": "list_payments", "ids": [self.group("read").ids()]},
            )
        if "streams" in self.sections:
            self._streams(pay_spec)
        if "sweep" in self.sections:
            self._sweep(pay_spec)

    # The ledger

    def _ledger(self) -> bool:
        """Whether the ledger section runs: asked for, and the schema has a journal."""
        if "ledger" not in self.sections:
            return False
        if not self.layout.journal:
            if not self.results["details"].get("ledger_skipped"):
                self.log("ledger: this schema has no journal (a commit before 2b7b521): skipped")
            self.results["details"]["ledger_skipped"] = True
            return False
        return True

    def _trial_balance(self, stage: str) -> list[tuple[str, str, dict]]:
        """GetTrialBalance at the business date, no currency named (the books' one),
        as a workload of the stage's interleaved group; first its answer is checked
        against the entries, and what its statements read is recorded."""
        if not self._ledger():
            return []
        from microfin.loanbilling.v1 import ledger_service_pb2, ledger_service_pb2_grpc

        from bench import journal

        channel = grpc.insecure_channel(self.server.address)
        try:
            answer = ledger_service_pb2_grpc.LedgerServiceStub(channel).GetTrialBalance(
                ledger_service_pb2.GetTrialBalanceRequest(), timeout=60
            )
        finally:
            channel.close()
        with self.admin.cursor() as cur:
            expected = journal.trial_balance_from_entries(cur, self.today, "IDR")
            plans = journal.explain_trial_balance(cur, self.today, "IDR")
            entries, totals = journal.totals_agree(cur)
        got = {
            ledger_service_pb2.Account.Name(line.account).removeprefix("ACCOUNT_"): (
                line.debit_total,
                line.credit_total,
            )
            for line in answer.lines
        }
        if (
            got != expected
            or answer.currency_code != "IDR"
            or answer.debit_total != answer.credit_total
            or answer.debit_total != sum(debit for debit, _ in expected.values())
        ):
            raise RuntimeError(
                f"GetTrialBalance ({stage}): {answer}, the entries sum to {expected}"
            )
        details = self.results["details"]
        details[f"trial_balance_{stage}_journal_entries"] = entries
        details[f"trial_balance_{stage}_ledger_totals_rows"] = totals
        details[f"trial_balance_{stage}_relations_read"] = ",".join(
            sorted({r for plan in plans.values() for r in plan["relations"]})
        )
        details[f"trial_balance_{stage}_rows_read"] = sum(p["rows_read"] for p in plans.values())
        details[f"trial_balance_{stage}_shared_buffers"] = sum(
            p["shared_buffers"] for p in plans.values()
        )
        details[f"trial_balance_{stage}_db_ms"] = round(
            sum(p["execution_ms"] for p in plans.values()), 2
        )
        self.results.setdefault("explain", {})[f"trial_balance_{stage}"] = plans
        self.log(
            f"GetTrialBalance ({stage}) checked against {entries:,} entries; its statements "
            f"read {details[f'trial_balance_{stage}_rows_read']:,} rows of "
            f"{details[f'trial_balance_{stage}_relations_read']} ({totals:,} rows)"
        )
        workloads = [
            (
                f"trial_balance_{stage}",
                f"GetTrialBalance, business date ({stage})",
                {"rpc": "trial_balance"},
            )
        ]
        if stage == "large":
            # The currency named: the totals' statement alone, without the books' currencies.
            workloads.append(
                (
                    "trial_balance_idr_large",
                    "GetTrialBalance, business date, IDR named (large)",
                    {"rpc": "trial_balance", "currency_code": "IDR"},
                )
            )
        return workloads

    def _verify_books(self) -> None:
        """VerifyBooks after every workload: the seeded journal and every posting the
        server made since agree with the loans, and the totals with the entries."""
        from microfin.loanbilling.v1 import ledger_service_pb2, ledger_service_pb2_grpc

        self.log("VerifyBooks")
        channel = grpc.insecure_channel(self.server.address)
        try:
            t0 = time.perf_counter()
            answer = ledger_service_pb2_grpc.LedgerServiceStub(channel).VerifyBooks(
                ledger_service_pb2.VerifyBooksRequest(), timeout=3600
            )
            elapsed = time.perf_counter() - t0
        finally:
            channel.close()
        details = self.results["details"]
        details["books_loans_checked"] = answer.loans_checked
        details["books_differences"] = len(answer.differences)
        details["books_agree"] = answer.agree
        details["verify_books_s"] = round(elapsed, 2)
        if answer.differences:
            self.results["books_differences_sample"] = [str(d) for d in answer.differences[:20]]
        self.log(
            f"VerifyBooks: {answer.loans_checked:,} loans in {elapsed:.1f} s, "
            f"{len(answer.differences)} differences"
        )

    # Streams

    def _streams(self, pay_spec: dict) -> None:
        s = self.size
        self.measure(
            "make_payment_probe_0",
            "MakePayment + delivery probe, 0 streams",
            pay_spec,
            probe_after=self.head(),
        )
        pay = self.group("pay")
        latest = dict(
            self.query(
                "SELECT loan_id, max(sequence) FROM events JOIN event_numbers "
                "ON event_numbers.event_id = events.id WHERE loan_id BETWEEN %s AND %s "
                "GROUP BY loan_id",
                (pay.lo, pay.hi),
            )
        )
        loans = list(range(pay.lo, pay.hi + 1))
        followed = [loans[i % len(loans)] for i in range(s.streams)]
        subs = [[loan, latest[loan] - 1] for loan in followed]
        holder = Worker("bench.streams", self.server.address)
        try:
            rss_before = rss_kb(self.server.pid)
            opened = holder.request(
                {
                    "op": "open",
                    "subs": subs,
                    "channels": max(1, s.streams // 100),
                    "timeout_s": 120,
                }
            )
            time.sleep(1.0)
            details = self.results["details"]
            details["streams_opened"] = opened["ready"]
            details["streams_open_s"] = opened["open_s"]
            details["server_rss_before_streams_mb"] = round(rss_before / MB, 1)
            details["server_rss_streams_idle_mb"] = round(rss_kb(self.server.pid) / MB, 1)
            self.log(f"streams: {opened}")
            if opened["ready"] < s.streams:
                self.log(f"only {opened['ready']} of {s.streams} streams delivered a first event")
            holder_cpu = cpu_s(holder.pid)
            self.measure(
                "health_streams",
                f"Health/Check no-op, {s.streams} streams open",
                {"rpc": "health"},
            )
            self.baseline = self.results["phases"]["health"]["calls_per_s"]
            self.measure(
                "make_payment_probe_streams",
                f"MakePayment + delivery probe, {s.streams} streams",
                pay_spec,
                probe_after=self.head(),
            )
            # The event path when the server is not saturated by the callers.
            self.measure(
                "make_payment_probe_streams_light",
                f"MakePayment + delivery probe, {s.streams} streams, {LIGHT_CONCURRENCY} callers",
                pay_spec,
                probe_after=self.head(),
                concurrency=LIGHT_CONCURRENCY,
            )
            details["streams_holder_cpu_s"] = round(cpu_s(holder.pid) - holder_cpu, 2)
            closed = holder.request({"op": "close"})
            details["stream_messages_received"] = closed["received"]
            details["stream_errors"] = closed["errors"]
        finally:
            holder.close()

    # Sweep

    def _sweep(self, pay_spec: dict) -> None:
        details = self.results["details"]
        self.wait_sequenced()
        unpaid = self.query("SELECT count(*) FROM loans WHERE status <> 'PAID'")[0][0]
        details["sweep_unpaid_loans"] = unpaid
        self.log(f"bare UPDATE of the {unpaid:,} unpaid loans")
        conn = seed.connect(self.url)
        try:
            with conn.cursor() as cur:
                t0 = time.perf_counter()
                cur.execute("UPDATE loans SET updated_at = updated_at WHERE status <> 'PAID'")
                rows = cur.rowcount
                conn.commit()
                update_s = time.perf_counter() - t0
        finally:
            conn.close()
        details["bare_update_rows"] = rows
        details["bare_update_s"] = round(update_s, 3)
        seed.vacuum(self.url, "loans")
        stub_channel = grpc.insecure_channel(self.server.address)
        stub = loan_service_pb2_grpc.LoanServiceStub(stub_channel)
        try:
            yesterday = self.today - dt.timedelta(days=1)
            self.log(f"sweep at {yesterday}")
            t0 = time.perf_counter()
            first = stub.RunDelinquencySweep(
                loan_service_pb2.RunDelinquencySweepRequest(as_of=_pb_date(yesterday)),
                timeout=3600,
            )
            sweep_s = time.perf_counter() - t0
            details["sweep_s"] = round(sweep_s, 3)
            details["sweep_loans_checked"] = first.loans_checked
            details["sweep_events_written"] = first.events_written
            details["sweep_newly_delinquent"] = first.newly_delinquent
            details["sweep_batches"] = first.batches
            details["sweep_vs_bare_update"] = ratio(sweep_s, update_s)
            self.log(
                f"sweep: {sweep_s:.1f} s for {first.loans_checked:,} loans, "
                f"{first.events_written:,} events; bare UPDATE {update_s:.1f} s"
            )
            t0 = time.perf_counter()
            self.wait_sequenced()
            details["sweep_events_numbered_after_s"] = round(time.perf_counter() - t0, 3)
            reference = self.measure("make_payment_before_sweep", "MakePayment, no sweep", pay_spec)
            # Payments while the server sweeps today: the client keeps sweeps running back
            # to back until enough payments completed during them (one sweep when the
            # database is large, several when a sweep is over in a few milliseconds).
            phase = self.measure(
                "make_payment_during_sweep",
                "MakePayment, during a sweep",
                pay_spec,
                sweep={
                    "as_of": self.today.isoformat(),
                    "min_calls": SWEEP_MIN_CALLS,
                    "max_s": SWEEP_MAX_S,
                },
            )
            sweeps = phase["sweeps"]
            if not sweeps:
                raise RuntimeError("make_payment_during_sweep: no sweep ran (payments ran out?)")
            details["sweep_under_load_s"] = sweeps[0]["s"]
            details["sweep_under_load_events_written"] = sweeps[0]["events_written"]
            details["sweeps_under_load"] = len(sweeps)
            details["payments_during_sweep_vs_without"] = ratio(
                phase["calls_per_s"], reference["calls_per_s"]
            )
        finally:
            stub_channel.close()

    # Profiling

    def _profile(self, folder: Path) -> None:
        py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
        if not Path(py_spy).exists():
            self.log("--profile needs py-spy: pip install py-spy")
            return
        folder.mkdir(parents=True, exist_ok=True)
        duration = max(10.0, self.size.duration_s)
        pay = self.group("pay")
        workloads = {
            "health": {"rpc": "health"},
            "get_outstanding": {"rpc": "get_outstanding", "ids": self._all_loans()},
            "make_payment": {"rpc": "pay", "loans": pay.ids(), "weeks": pay.weeks},
            "create_loan": {
                "rpc": "create_loan",
                "customers": [1, self.group("paid520").hi],
                "weeks": 50,
            },
        }
        modes = {
            "gil": ["--gil", "--nonblocking"],
            "all": ["--nonblocking"],
            "native": ["--gil", "--native"],
        }
        for name, workload in workloads.items():
            for mode in self.args.profile_modes.split(","):
                flags = modes[mode]
                out = folder / f"{name}-{mode}.txt"
                self.log(f"py-spy {mode}: {name} -> {out}")
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(self.server.pid),
                        "--rate",
                        str(PROFILE_RATE_HZ),
                        "--duration",
                        str(int(duration)),
                        "--format",
                        "raw",
                        "--threads",
                        "--output",
                        str(out),
                        *flags,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                phase = self.measure(
                    f"profiled_{name}_{mode}",
                    f"(profiled {mode}) {name}",
                    workload,
                    warmup_s=0.5,
                    duration_s=duration,
                )
                spy.wait(timeout=120)
                if out.exists():
                    calls = phase["calls_per_s"] * int(duration)
                    text = profile.summarize(out, calls=calls, rate=PROFILE_RATE_HZ)
                    out.with_suffix(".summary.txt").write_text(text + "\n")

    # Targets

    def _targets(self) -> None:
        p = self.results["phases"]
        d = self.results["details"]

        def rate(key: str) -> float | None:
            return p.get(key, {}).get("calls_per_s")

        def add(name: str, value, op: str, goal: float) -> None:
            ok = None if value is None else (value >= goal if op == ">=" else value <= goal)
            if op == "<" and value is not None:
                ok = value < goal
            self.results["targets"].append(
                {"name": name, "value": value, "op": op, "goal": goal, "ok": ok}
            )

        noop = rate("health")
        add("MakePayment / no-op", ratio(rate("make_payment"), noop), ">=", 0.3)
        add(
            "MakePayment / its statements by pgbench (the database's limit)",
            ratio(rate("make_payment"), rate("db_payment")),
            ">=",
            0.3,
        )
        add(
            "MakePayment hot loans / no-op",
            ratio(rate("make_payment_hot"), noop),
            ">=",
            0.35,
        )
        add(
            "GetOutstanding / no-op",
            ratio(rate("get_outstanding_large"), noop),
            ">=",
            0.6,
        )
        add("IsDelinquent / no-op", ratio(rate("is_delinquent_large"), noop), ">=", 0.6)
        add("CreateLoan (50 weeks) / no-op", ratio(rate("create_loan"), noop), ">=", 0.2)
        for key, name in (
            ("get_outstanding", "GetOutstanding"),
            ("is_delinquent", "IsDelinquent"),
            ("get_loan", "GetLoan"),
            ("trial_balance", "GetTrialBalance"),
        ):
            add(
                f"{name} at {self.size.total_loans:,} loans / at {self.size.small_loans:,}",
                ratio(rate(f"{key}_large"), rate(f"{key}_small")),
                ">=",
                0.8,
            )
        for key, name in (
            ("get_outstanding", "GetOutstanding"),
            ("is_delinquent", "IsDelinquent"),
            ("get_outstanding_{}_past", "GetOutstanding as_of past"),
        ):
            if "{}" in key:
                a, b = key.format("paid520"), key.format("paid1")
            else:
                a, b = f"{key}_paid520", f"{key}_paid1"
            add(f"{name}: 520 paid / 1 paid", ratio(rate(a), rate(b)), ">=", 0.8)
        add(
            f"sweep of {d.get('sweep_loans_checked', 0):,} loans / bare UPDATE",
            d.get("sweep_vs_bare_update"),
            "<=",
            3,
        )
        add(
            f"MakePayment with {self.size.streams:,} streams / with none",
            ratio(rate("make_payment_probe_streams"), rate("make_payment_probe_0")),
            ">=",
            0.8,
        )
        probe = p.get("make_payment_probe_streams", {}).get("probe") or {}
        add(
            f"event create-to-delivery p99 ms, {self.size.concurrency} callers (streams open)",
            probe.get("create_to_delivery_p99_ms"),
            "<",
            100,
        )
        add(
            f"server RSS MB under load, {self.size.streams:,} streams",
            p.get("make_payment_probe_streams", {}).get("server_rss_max_mb"),
            "<",
            200,
        )
        light = p.get("make_payment_probe_streams_light", {}).get("probe") or {}
        add(
            f"event create-to-delivery p99 ms, light load: {LIGHT_CONCURRENCY} callers",
            light.get("create_to_delivery_p99_ms"),
            "<",
            100,
        )
        probe0 = p.get("make_payment_probe_0", {}).get("probe") or {}
        d["event_create_to_delivery_p50_ms_no_streams"] = probe0.get("create_to_delivery_p50_ms")
        d["event_create_to_delivery_p99_ms_no_streams"] = probe0.get("create_to_delivery_p99_ms")
        d["event_create_to_delivery_p50_ms_streams"] = probe.get("create_to_delivery_p50_ms")
        d["event_create_to_delivery_p99_ms_streams"] = probe.get("create_to_delivery_p99_ms")
        d["event_answer_to_delivery_p99_ms_streams"] = probe.get("answer_to_delivery_p99_ms")
        d["events_missing_streams"] = probe.get("missing")
        d["server_rss_max_mb"] = max(
            (ph.get("server_rss_max_mb") or 0 for ph in p.values()), default=None
        )


def _pb_date(day: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    base = TINY if args.tiny else FULL if args.full else DEFAULT
    size = base.with_overrides(
        concurrency=args.concurrency,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        total_loans=args.loans,
        filler_weeks=args.filler_weeks,
        streams=args.streams,
    )
    needed = (
        size.small_loans + size.pay_loans + size.hot_loans + size.payoff_loans + size.reverse_loans
    )
    if size.total_loans < needed:
        print(f"--loans: the workloads need {needed:,} loans or more", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="lb-bench-"))
    created = args.database_url is None
    url = seed.create_database(args.admin_url) if created else args.database_url
    bench = Bench(url, size, args, workdir)
    failed = False
    try:
        results = bench.run()
    except BaseException:
        failed = True
        raise
    finally:
        if bench.admin is not None:
            bench.admin.close()
        if created and not args.keep_database:
            seed.drop_database(args.admin_url, url)
        elif failed or args.keep_database:
            print(f"database kept: {url}", file=sys.stderr)
        if failed and bench.server is not None:
            print(f"server log: {bench.server.log_path}", file=sys.stderr)
    results["database_url"] = "(dropped)" if created and not args.keep_database else url
    print(report.render(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
