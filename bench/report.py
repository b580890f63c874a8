"""The results as Markdown tables (stdout, docs/benchmarks.md) and as JSON."""

from __future__ import annotations


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    numeric = [all(_numeric(r[i]) for r in cells) and cells for i in range(len(headers))]

    def line(values: list[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if numeric[i] else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace(".", "").replace("-", "").replace("x", "")
    return stripped.isdigit() or text == "-"


def phases_table(results: dict) -> str:
    rows = []
    for phase in results["phases"].values():
        if "calls_per_s" not in phase:
            continue
        rows.append(
            [
                phase["label"],
                phase["db_loans"],
                phase["calls_per_s"],
                phase["p50_ms"],
                phase["p99_ms"],
                phase["errors"],
                phase.get("vs_noop"),
                phase.get("server_cpu_ms_per_call"),
                phase.get("pg_cpu_ms_per_call"),
                phase.get("client_cpu_ms_per_call"),
            ]
        )
    rows = [[*r[:6], _ratio(r[6]), *r[7:]] for r in rows]
    return table(
        [
            "workload",
            "DB loans",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "vs no-op",
            "server CPU ms/call",
            "PG CPU ms/call",
            "client CPU ms/call",
        ],
        rows,
    )


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def targets_table(results: dict) -> str:
    rows = []
    for t in results["targets"]:
        op = t["op"]
        rows.append(
            [
                t["name"],
                "-" if t["value"] is None else f"{t['value']:.3g}",
                f"{op} {t['goal']:g}",
                {True: "PASS", False: "FAIL", None: "n/a"}[t["ok"]],
            ]
        )
    return table(["target (one run)", "measured", "goal", "result"], rows)


def details_table(results: dict) -> str:
    rows = [[k, v] for k, v in results["details"].items()]
    return table(["measure", "value"], [[k, _fmt(v, 2)] for k, v in rows])


def render(results: dict) -> str:
    m = results["machine"]
    parts = [
        f"loanbilling bench ({results['size']['name']}): {results['command']}",
        f"machine: {m.get('cpus')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gib')} GiB; "
        f"load average at start {m.get('loadavg_at_start')}, at end {m.get('loadavg_at_end')}; "
        f"{results['elapsed_s']} s in all",
        f"server code: commit {m.get('git_commit', '?')}"
        + (
            f" plus {len(m['git_uncommitted'])} uncommitted file(s)"
            if m.get("git_uncommitted")
            else ""
        ),
        "",
        phases_table(results),
        "",
        details_table(results),
        "",
        targets_table(results),
    ]
    return "\n".join(parts)
