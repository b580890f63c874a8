"""deploy/monitoring: the Grafana dashboard and the Prometheus alerting rules.

Every metric they name is one a running `loanbilling serve --metrics-listen`
exports (scraped from its /metrics after a few calls, with the exact sample
names Prometheus stores: counters' `_total`, histograms' `_bucket`, `_count`,
`_sum`), except the few listed in EXTERNAL; every loanbilling metric the server
exports is on the dashboard; label names and the `method` and `code` values
they match exist. The rules pass `promtool check rules` and the unit tests in
alerts.test.yaml (promtool from scripts/fetch_promtool.sh, which `make test` runs),
and their structure is checked everywhere; so is the dashboard's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from microfin.loanbilling.v1 import (
    analytics_service_pb2,
    ledger_service_pb2,
    loan_service_pb2,
    loan_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import START
from tests.e2e.processes import ServerProcess, clean_env, free_port, migrate
from tests.support.api import create_canonical_loan, create_customer, new_key, pay


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI installs the dev extras (pip install -e '.[dev]')")
    pytest.skip(f"{what} is missing (pip install -e '.[dev]')", allow_module_level=True)


try:
    import promql_parser
    import yaml
except ImportError as error:  # pragma: no cover - depends on the environment
    _missing(f"{error.name} (PyYAML, promql-parser)")

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "alerts.yaml"
RULE_TESTS = MONITORING / "alerts.test.yaml"

# Metrics that come from elsewhere than the server, and where from. Keep it short:
# anything else the files name must be scraped from a running server below.
EXTERNAL = {"kube_cronjob_status_last_successful_time": "kube-state-metrics"}
# Labels Prometheus itself puts on scraped series (target labels).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "cronjob"}
# Grafana's built-in range variables, and a value to parse them with.
GRAFANA_RANGES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
FAULT_CODES = {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED"}
METHODS = {
    method.name
    for module in (
        loan_service_pb2,
        notification_service_pb2,
        analytics_service_pb2,
        ledger_service_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}
CODES = {code.name for code in grpc.StatusCode}
DURATION = re.compile(r"^(\d+[smhdwy])+$")


# --- What the files name ---------------------------------------------------------


@dataclass
class Query:
    where: str  # the file and the rule or panel, for messages
    expr: str
    legend: str = ""


@dataclass
class Selector:
    where: str
    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # label, op, value


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def _grafana_to_promql(expr: str) -> str:
    """A Grafana query as Prometheus would get it: ranges filled in, and every
    other variable (each used in a regex matcher) matching anything."""
    for name, value in GRAFANA_RANGES.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _queries() -> list[Query]:
    queries = []
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            queries.append(Query(f"{RULES.name}: {rule['alert']}", rule["expr"]))
    dashboard = _dashboard()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(
                Query(
                    f"{DASHBOARD.name}: {panel['title']} ({target['refId']})",
                    _grafana_to_promql(target["expr"]),
                    target.get("legendFormat", ""),
                )
            )
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert found, f"variable {variable['name']}: expected label_values(selector, label)"
            selector, label = found.groups()
            queries.append(
                Query(
                    f"{DASHBOARD.name}: variable {variable['name']}",
                    _grafana_to_promql(selector),
                    "{{" + label + "}}",
                )
            )
    return queries


def _selectors(query: Query) -> list[Selector]:
    try:
        tree = promql_parser.parse(query.expr)
    except Exception as error:  # noqa: BLE001 - the parser's own error type varies
        raise AssertionError(f"{query.where}: not PromQL ({error}):\n{query.expr}") from None
    found: list[Selector] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"{query.where}: a selector without a metric name"
            matchers = [(m.name, str(m.op), m.value) for m in node.matchers.matchers]
            found.append(Selector(query.where, node.name, matchers))

    promql_parser.walk(tree, visit)
    assert found, f"{query.where}: names no metric"
    return found


def _literal_values(op: str, value: str) -> list[str] | None:
    """The values a matcher names, when they are plain words (a|b|c); else None."""
    if op.endswith("Re"):
        return value.split("|") if re.fullmatch(r"\w+(\|\w+)*", value) else None
    return [value]


# --- A running server's /metrics --------------------------------------------------


@dataclass
class Scrape:
    text: str
    samples: dict[str, set[str]]  # sample name -> label names
    families: dict[str, set[str]]  # family name -> its sample names
    values: dict[str, float]  # unlabelled sample name -> value


def _scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, set[str]] = {}
    families: dict[str, set[str]] = {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
            families.setdefault(family.name, set()).add(sample.name)
            if not sample.labels:
                values[sample.name] = sample.value
    # The text format gives a counter's or histogram's `_created` series as a gauge
    # family of its own: it belongs to its metric.
    for name in [
        n for n in families if n.endswith("_created") and n[: -len("_created")] in families
    ]:
        families[name[: -len("_created")]] |= families.pop(name)
    return Scrape(text, samples, families, values)


def _traffic(address: str) -> grpc.Call:
    """Calls that make every labelled series appear; returns an open stream."""
    channel = grpc.insecure_channel(address)
    stub = loan_service_pb2_grpc.LoanServiceStub(channel)
    loan = create_canonical_loan(stub, create_customer(stub), START, request_id=new_key("loan"))
    pay(stub, loan.id, 110_000, on=START.replace(day=12))
    with pytest.raises(grpc.RpcError):
        pay(stub, loan.id, 1, on=START.replace(day=12))  # refused: INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError):
        stub.GetLoan(loan_service_pb2.GetLoanRequest(loan_id=999_999), timeout=10)
    stub.RunDelinquencySweep(loan_service_pb2.RunDelinquencySweepRequest(), timeout=30)
    stream = notification_service_pb2_grpc.NotificationServiceStub(channel).StreamNotifications(
        notification_service_pb2.StreamNotificationsRequest(), timeout=30
    )
    next(stream)  # the stream is open and counted once it delivered something
    return stream


def _wait_for(port: int, condition, what: str, timeout_s: float = 15.0) -> Scrape:
    deadline = time.monotonic() + timeout_s
    while True:
        scrape = _scrape(port)
        if condition(scrape):
            return scrape
        if time.monotonic() > deadline:
            loanbilling = "\n".join(
                line for line in scrape.text.splitlines() if line.startswith("loanbilling_")
            )
            raise AssertionError(f"timed out waiting for {what}:\n{loanbilling}")
        time.sleep(0.1)


def _delete_exchange(amqp_url: str, exchange: str) -> None:
    import aio_pika

    async def delete() -> None:
        async with await aio_pika.connect(amqp_url, timeout=5) as connection:
            channel = await connection.channel()
            await channel.exchange_delete(exchange)

    asyncio.run(delete())


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql-amqp", marks=pytest.mark.postgres)],
)
def scraped(request, tmp_path_factory) -> Scrape:
    """A real `loanbilling serve`, after some calls, with a stream open: its /metrics.
    On PostgreSQL it also relays to the machine's RabbitMQ (an exchange of its own)."""
    workdir = tmp_path_factory.mktemp(f"monitoring-{request.param}")
    metrics_port = free_port()
    args = ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--sweep-interval-s", "3600"]
    amqp = None
    if request.param == "sqlite":
        url = f"sqlite:///{workdir}/loanbilling.db"
        migrate(url, cwd=workdir)
    else:
        from tests.support.rabbitmq import AMQP_URL, broker_lock, require_rabbitmq

        url = request.getfixturevalue("postgres_databases").create()
        lock = broker_lock(exclusive=False)
        lock.__enter__()
        request.addfinalizer(lambda: lock.__exit__(None, None, None))
        require_rabbitmq()
        amqp = (AMQP_URL, f"lb-test-monitoring-{uuid.uuid4().hex[:12]}")
        args += ["--amqp-url", amqp[0], "--amqp-exchange", amqp[1]]
    started = time.time()
    server = ServerProcess(url, workdir, *args, env=clean_env())
    try:
        with server:
            stream = _traffic(server.address)
            try:
                scrape = _wait_for(
                    metrics_port,
                    lambda s: (
                        s.values.get("loanbilling_open_streams") == 1
                        and (amqp is None or s.values.get("loanbilling_outbox_relay_leading") == 1)
                        and (amqp is None or s.values.get("loanbilling_outbox_relay_lag") == 0)
                    ),
                    "the stream to be counted (and the relay to lead and catch up)",
                )
            finally:
                stream.cancel()
    finally:
        if amqp is not None:
            _delete_exchange(*amqp)
    # What the new gauges say on a server that swept at start and by RPC.
    assert scrape.values["loanbilling_sweep_interval_seconds"] == 3600
    assert started <= scrape.values["loanbilling_sweep_last_success_timestamp_seconds"]
    assert scrape.values["loanbilling_sweep_last_success_timestamp_seconds"] <= time.time()
    assert scrape.values["loanbilling_outbox_relay_enabled"] == (0 if amqp is None else 1)
    assert scrape.values["loanbilling_sweeps_total"] >= 2  # at start, and RunDelinquencySweep
    return scrape


def test_every_metric_named_is_exported_by_a_running_server(scraped):
    queries = _queries()
    unknown, external = [], set()
    for query in queries:
        for selector in _selectors(query):
            if selector.name in EXTERNAL:
                external.add(selector.name)
                continue
            if selector.name not in scraped.samples:
                family = scraped.families.get(selector.name) or scraped.families.get(
                    selector.name.removesuffix("_total")
                )
                hint = f" (Prometheus stores it as {sorted(family)})" if family else ""
                unknown.append(f"{selector.where}: {selector.name}{hint}")
    assert not unknown, "not exported by loanbilling serve:\n" + "\n".join(unknown)
    assert external == set(EXTERNAL), "EXTERNAL lists a metric the files no longer use"


def test_labels_and_label_values_named_exist(scraped):
    wrong = []
    for query in _queries():
        selectors = _selectors(query)
        for selector in selectors:
            if selector.name in EXTERNAL:
                continue
            labels = scraped.samples.get(selector.name, set()) | TARGET_LABELS
            for label, op, value in selector.matchers:
                if label not in labels:
                    wrong.append(f"{selector.where}: {selector.name} has no label {label!r}")
                known = {"method": METHODS, "code": CODES}.get(label)
                words = _literal_values(op, value)
                if known is not None and words is not None:
                    wrong += [
                        f"{selector.where}: {label}={word!r} is no {label}"
                        for word in words
                        if word not in known
                    ]
        # Legends show labels the series have.
        have = set().union(
            *(scraped.samples.get(s.name, set()) for s in selectors), TARGET_LABELS, {"le"}
        )
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend):
            if label not in have:
                wrong.append(f"{query.where}: legend names {label!r}, which its series lack")
    assert not wrong, "\n".join(wrong)


def test_the_dashboard_shows_every_loanbilling_metric(scraped):
    named = {
        s.name
        for query in _queries()
        if query.where.startswith(DASHBOARD.name)
        for s in _selectors(query)
    }
    missing = sorted(
        family
        for family, samples in scraped.families.items()
        if family.startswith("loanbilling_") and not samples & named
    )
    assert not missing, f"exported but not on the dashboard: {missing}"


# --- The rules ----------------------------------------------------------------------


def test_rules_are_well_formed():
    rules = _rules()
    assert set(rules) == {"groups"}
    groups = rules["groups"]
    assert groups and len({g["name"] for g in groups}) == len(groups)
    alerts = []
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            name = rule.get("alert")
            assert name and re.fullmatch(r"Loanbilling[A-Z][A-Za-z]+", name), rule
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            _selectors(Query(name, rule["expr"]))  # parses
            if "for" in rule:
                assert DURATION.match(rule["for"]), f"{name}: for {rule['for']!r}"
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            for key in ("summary", "description"):
                assert rule["annotations"].get(key, "").strip(), f"{name}: no {key}"
            alerts.append(name)
    assert len(set(alerts)) == len(alerts), "alert names repeat"
    # What the alerts must cover: error rate, p99 latency, a stale sweep, relay lag.
    assert {
        "LoanbillingErrorRateHigh",
        "LoanbillingLatencyHigh",
        "LoanbillingSweepStale",
        "LoanbillingRelayLagging",
    } <= set(alerts)
    expressions = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    assert "histogram_quantile(0.99" in expressions["LoanbillingLatencyHigh"]
    for code in FAULT_CODES:
        assert code in expressions["LoanbillingErrorRateHigh"]


def test_every_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {r["alert"] for g in _rules()["groups"] for r in g["rules"]}
    assert alerts == fired, f"no firing case in {RULE_TESTS.name}: {sorted(alerts - fired)}"


def test_rules_pass_promtool():
    fetched = ROOT / ".tools" / "bin" / "promtool"  # scripts/fetch_promtool.sh
    promtool = str(fetched) if fetched.exists() else shutil.which("promtool")
    if promtool is None:
        reason = "promtool is missing (bash scripts/fetch_promtool.sh, or Debian's prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    for command in (["check", "rules", RULES.name], ["test", "rules", RULE_TESTS.name]):
        done = subprocess.run(
            [promtool, *command],
            cwd=MONITORING,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"promtool {' '.join(command)}:\n{done.stdout}{done.stderr}"


# --- The dashboard --------------------------------------------------------------------


def test_dashboard_is_an_importable_grafana_dashboard():
    dashboard = _dashboard()
    assert dashboard["id"] is None  # Grafana assigns it on import
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${datasource}"}
    ids, cells, refs = set(), {}, set()
    for panel in dashboard["panels"]:
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        assert isinstance(panel["id"], int) and panel["id"] not in ids, where
        ids.add(panel["id"])
        assert panel["title"], where
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), where
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{where} overlaps {cells.get((x, y))}"
                cells[(x, y)] = where
        if panel["type"] == "row":
            assert grid["h"] == 1 and grid["w"] == 24 and not panel.get("targets"), where
            continue
        assert panel["type"] in {"timeseries", "stat"}, where
        assert panel["datasource"] == source, where
        targets = panel["targets"]
        assert targets, where
        assert len({t["refId"] for t in targets}) == len(targets), where
        for target in targets:
            assert target["datasource"] == source, where
            refs |= set(re.findall(r"\$\{?(\w+)\}?", target["expr"]))
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == source, variable["name"]
            refs |= set(re.findall(r"\$\{?(\w+)\}?", variable["definition"]))
    undefined = refs - set(variables) - set(GRAFANA_RANGES)
    assert not undefined, f"variables used but not defined: {sorted(undefined)}"
    # Every query parses as PromQL once Grafana filled its variables in.
    for query in _queries():
        _selectors(query)
