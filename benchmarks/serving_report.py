"""Serving benchmark report: parse wrk output, take medians over rounds, print the table.

Used by benchmarks/serving.sh (stdlib only, Python >= 3.11; `plot` also needs matplotlib):

    serving_report.py line RUN.txt                  one line for the progress log
    serving_report.py report RAW_DIR --json OUT     table on stdout, OUT written
    serving_report.py plot OUT.json OUT.png         bar chart: rps and p50/p99 per stack

RAW_DIR holds one wrk output per measured run, named `r<round>-<stack>.txt`, and `meta.txt`
with `dotted.key=value` lines (machine, versions, config, stack descriptions, and
`interference.<stack>.r<round>`: % of the CPU used outside the benchmark during that run).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Stack keys in the order they run in each round; the table's numbering follows it.
STACK_ORDER: tuple[str, ...] = ("uvicorn", "tutorial", "role")
# (numerator, denominator): the role's stack against the tutorial recipe and against the ceiling.
RATIOS: tuple[tuple[str, str], ...] = (("role", "tutorial"), ("role", "uvicorn"))

# wrk's format_time_us() prints us/ms below one second, then s and m (units.c).
_TIME_UNITS_MS: dict[str, float] = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
}
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|m|h)\s*$")
_PERCENTILE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)%\s+(\S+)\s*$")
_RUN_FILE_RE = re.compile(r"^r(\d+)-([A-Za-z0-9_]+)\.txt$")


class WrkParseError(ValueError):
    """The text is not the output of a finished `wrk --latency` run."""


def parse_duration_ms(text: str) -> float:
    """`812.00us`, `4.80ms`, `1.02s`, `1.00m` -> milliseconds."""
    match = _DURATION_RE.match(text)
    if not match:
        raise WrkParseError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


@dataclass(frozen=True)
class WrkRun:
    """One finished wrk run."""

    requests_per_sec: float
    requests: int
    duration_s: float
    latency_ms: dict[float, float]  # percentile (50.0, 75.0, 90.0, 99.0, ...) -> ms
    latency_avg_ms: float
    latency_max_ms: float
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout

    @property
    def p50_ms(self) -> float:
        return self.latency_ms[50.0]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms[99.0]

    @property
    def errors(self) -> int:
        """Responses that were not 2xx/3xx plus socket errors of every kind."""
        return self.non_2xx_3xx + sum(self.socket_errors.values())


def parse_wrk(text: str) -> WrkRun:
    """Parse the console output of `wrk --latency` (wrk 4.x, also the 8-percentile forks)."""
    latency: dict[float, float] = {}
    avg_ms = max_ms = None
    rps = None
    requests = None
    duration_s = None
    non_2xx = 0
    socket_errors: dict[str, int] = {}
    in_distribution = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Latency Distribution"):
            in_distribution = True
            continue
        if in_distribution:
            match = _PERCENTILE_RE.match(line)
            if match:
                latency[float(match.group(1))] = parse_duration_ms(match.group(2))
                continue
            in_distribution = False
        fields = stripped.split()
        if len(fields) >= 4 and fields[0] == "Latency":
            # "Latency   5.12ms    2.01ms  40.00ms   80.00%": avg, stdev, max, +/- stdev
            avg_ms = parse_duration_ms(fields[1])
            max_ms = parse_duration_ms(fields[3])
        elif stripped.startswith("Requests/sec:"):
            rps = float(stripped.split(":", 1)[1])
        elif match := re.match(r"^(\d+) requests in (\S+), ", stripped):
            requests = int(match.group(1))
            duration_s = parse_duration_ms(match.group(2)) / 1000.0
        elif stripped.startswith("Non-2xx or 3xx responses:"):
            non_2xx = int(stripped.split(":", 1)[1])
        elif stripped.startswith("Socket errors:"):
            for kind, count in re.findall(r"(\w+) (\d+)", stripped.split(":", 1)[1]):
                socket_errors[kind] = int(count)
    missing = [
        name
        for name, value in (
            ("Requests/sec", rps),
            ("'N requests in T'", requests),
            ("Latency stats", avg_ms),
        )
        if value is None
    ]
    if not latency:
        missing.append("Latency Distribution (run wrk with --latency)")
    elif 50.0 not in latency or 99.0 not in latency:
        missing.append("50% and 99% in the Latency Distribution")
    if missing:
        raise WrkParseError("wrk output lacks " + ", ".join(missing))
    assert rps is not None and requests is not None and duration_s is not None
    assert avg_ms is not None and max_ms is not None
    return WrkRun(
        requests_per_sec=rps,
        requests=requests,
        duration_s=duration_s,
        latency_ms=latency,
        latency_avg_ms=avg_ms,
        latency_max_ms=max_ms,
        non_2xx_3xx=non_2xx,
        socket_errors=socket_errors,
    )


@dataclass(frozen=True)
class StackSummary:
    """Medians over the rounds of one stack (each metric's median taken on its own)."""

    key: str
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # summed over all rounds
    rps_rounds: tuple[float, ...]
    p50_ms_rounds: tuple[float, ...]
    p99_ms_rounds: tuple[float, ...]


def summarize(key: str, runs: Sequence[WrkRun]) -> StackSummary:
    if not runs:
        raise ValueError(f"no runs for stack {key!r}")
    rps = tuple(run.requests_per_sec for run in runs)
    p50 = tuple(run.p50_ms for run in runs)
    p99 = tuple(run.p99_ms for run in runs)
    return StackSummary(
        key=key,
        rounds=len(runs),
        rps=statistics.median(rps),
        p50_ms=statistics.median(p50),
        p99_ms=statistics.median(p99),
        errors=sum(run.errors for run in runs),
        rps_rounds=rps,
        p50_ms_rounds=p50,
        p99_ms_rounds=p99,
    )


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator for each metric (rps: > 1 is better; latency: < 1 is better)."""

    numerator: str
    denominator: str
    rps: float
    p50: float
    p99: float


def ratio(numerator: StackSummary, denominator: StackSummary) -> Ratio:
    def div(a: float, b: float) -> float:
        return a / b if b else float("nan")

    return Ratio(
        numerator=numerator.key,
        denominator=denominator.key,
        rps=div(numerator.rps, denominator.rps),
        p50=div(numerator.p50_ms, denominator.p50_ms),
        p99=div(numerator.p99_ms, denominator.p99_ms),
    )


def load_runs(raw_dir: Path) -> dict[str, list[WrkRun]]:
    """`r<round>-<stack>.txt` files -> runs per stack, in round order."""
    found: dict[str, list[tuple[int, WrkRun]]] = {}
    for path in sorted(raw_dir.iterdir()):
        match = _RUN_FILE_RE.match(path.name)
        if not match:
            continue
        try:
            run = parse_wrk(path.read_text())
        except WrkParseError as exc:
            raise WrkParseError(f"{path}: {exc}") from exc
        found.setdefault(match.group(2), []).append((int(match.group(1)), run))
    return {key: [run for _unused, run in sorted(runs, key=lambda item: item[0])] for key, runs in found.items()}


def parse_meta(text: str) -> dict[str, Any]:
    """`a.b.c=value` lines -> nested dicts; all-digit values become ints, the rest stay strings."""
    meta: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"meta line without '=': {line!r}")
        key, value = line.split("=", 1)
        node = meta
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"meta key {key!r} conflicts with a value above it")
            node = child
        value = value.strip()
        node[parts[-1]] = int(value) if value.isdigit() else value
    return meta


def ordered_keys(keys: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """STACK_ORDER first, then any other key alphabetically."""
    present = list(keys)
    return [k for k in STACK_ORDER if k in present] + sorted(k for k in present if k not in STACK_ORDER)


def _label(key: str, meta: Mapping[str, Any]) -> str:
    stacks = meta.get("stack", {})
    entry = stacks.get(key, {}) if isinstance(stacks, Mapping) else {}
    return str(entry.get("label", key)) if isinstance(entry, Mapping) else key


def interference(meta: Mapping[str, Any], key: str) -> dict[int, float]:
    """Round -> % of all cores busy outside the benchmark container during that measured run
    (`interference.<stack>.r<round>=<pct>` in meta.txt); empty when not measured."""
    section = meta.get("interference", {})
    node = section.get(key, {}) if isinstance(section, Mapping) else {}
    if not isinstance(node, Mapping):
        return {}
    return {int(r[1:]): float(v) for r, v in node.items() if re.fullmatch(r"r\d+", r)}


def _fmt_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def format_table(
    summaries: Sequence[StackSummary], ratios: Sequence[Ratio], meta: Mapping[str, Any] | None = None
) -> str:
    meta = meta or {}
    number = {s.key: str(i) for i, s in enumerate(summaries, 1)}
    # Worst interference of a stack's rounds, when measured: how much of the machine was not ours.
    other = {s.key: interference(meta, s.key) for s in summaries}
    with_other = any(other.values())
    header = ("#", "stack", "rps", "p50", "p99", "errors") + (("other CPU",) if with_other else ()) + ("rps per round",)
    rows: list[tuple[str, ...]] = [header]
    for s in summaries:
        worst = (f"{max(other[s.key].values()):.0f}%" if other[s.key] else "-",) if with_other else ()
        rows.append(
            (
                number[s.key],
                _label(s.key, meta),
                f"{s.rps:.0f}",
                _fmt_ms(s.p50_ms),
                _fmt_ms(s.p99_ms),
                str(s.errors),
            )
            + worst
            + (" ".join(f"{v:.0f}" for v in s.rps_rounds),)
        )
    for r in ratios:
        name = f"{number.get(r.numerator, r.numerator)}/{number.get(r.denominator, r.denominator)}"
        ratio_row = ("", f"ratio {name}", f"{r.rps:.2f}x", f"{r.p50:.2f}x", f"{r.p99:.2f}x", "")
        rows.append(ratio_row + ("",) * (len(header) - len(ratio_row)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4, 5, 6} if with_other else {2, 3, 4, 5}
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0 or index == len(summaries):
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build(runs: Mapping[str, Sequence[WrkRun]]) -> tuple[list[StackSummary], list[Ratio]]:
    summaries = [summarize(key, runs[key]) for key in ordered_keys(runs)]
    by_key = {s.key: s for s in summaries}
    ratios = [ratio(by_key[a], by_key[b]) for a, b in RATIOS if a in by_key and b in by_key]
    return summaries, ratios


def report_json(
    summaries: Sequence[StackSummary],
    ratios: Sequence[Ratio],
    runs: Mapping[str, Sequence[WrkRun]],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    doc: dict[str, Any] = {key: value for key, value in meta.items() if key not in ("stack", "interference")}
    stack_meta = meta.get("stack", {})
    doc["stacks"] = []
    for number, s in enumerate(summaries, 1):
        entry: dict[str, Any] = {"number": number, "key": s.key}
        if isinstance(stack_meta, Mapping) and isinstance(stack_meta.get(s.key), Mapping):
            entry.update(stack_meta[s.key])
        entry["median"] = {"rps": s.rps, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms}
        entry["errors"] = s.errors
        entry["rounds"] = [
            {
                "round": i,
                "rps": run.requests_per_sec,
                "requests": run.requests,
                "duration_s": run.duration_s,
                "latency_ms": {f"p{p:g}": v for p, v in sorted(run.latency_ms.items())}
                | {"avg": run.latency_avg_ms, "max": run.latency_max_ms},
                "non_2xx_3xx": run.non_2xx_3xx,
                "socket_errors": run.socket_errors,
                "other_cpu_pct": interference(meta, s.key).get(i),
            }
            for i, run in enumerate(runs[s.key], 1)
        ]
        doc["stacks"].append(entry)
    number = {s.key: i for i, s in enumerate(summaries, 1)}
    doc["ratios"] = [
        asdict(r) | {"name": f"{number[r.numerator]}/{number[r.denominator]}"} for r in ratios
    ]
    return doc


def line(run: WrkRun) -> str:
    text = f"{run.requests_per_sec:.0f} rps, p50 {_fmt_ms(run.p50_ms)}, p99 {_fmt_ms(run.p99_ms)}"
    return text + (f", {run.errors} ERRORS" if run.errors else "")


def plot(doc: Mapping[str, Any], out: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only this subcommand needs it (benchmarks/requirements-plot.txt)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    stacks = doc["stacks"]
    labels = [f"{s['number']} {s.get('short', s['key'])}" for s in stacks]
    colors = ["#9e9e9e", "#e6a23c", "#409eff", "#67c23a", "#f56c6c"][: len(stacks)]
    fig, (ax_rps, ax_lat) = plt.subplots(1, 2, figsize=(11, 4.6))

    rps = [s["median"]["rps"] for s in stacks]
    low = [r - min(x["rps"] for x in s["rounds"]) for r, s in zip(rps, stacks, strict=True)]
    high = [max(x["rps"] for x in s["rounds"]) - r for r, s in zip(rps, stacks, strict=True)]
    bars = ax_rps.bar(labels, rps, color=colors, yerr=[low, high], capsize=4)
    ax_rps.bar_label(bars, labels=[f"{v:.0f}" for v in rps], padding=3)
    ax_rps.set_title("requests/s (median, bars: min-max of rounds)")
    ax_rps.set_ylabel("requests/s")
    ax_rps.margins(y=0.15)

    width = 0.38
    xs = range(len(stacks))
    p50 = [s["median"]["p50_ms"] for s in stacks]
    p99 = [s["median"]["p99_ms"] for s in stacks]
    b50 = ax_lat.bar([x - width / 2 for x in xs], p50, width, color=colors, alpha=0.55, label="p50")
    b99 = ax_lat.bar([x + width / 2 for x in xs], p99, width, color=colors, label="p99", hatch="//")
    ax_lat.bar_label(b50, labels=[f"{v:.1f}" for v in p50], padding=2, fontsize=8)
    ax_lat.bar_label(b99, labels=[f"{v:.1f}" for v in p99], padding=2, fontsize=8)
    ax_lat.set_xticks(list(xs), labels)
    ax_lat.set_title("latency (median of rounds), ms")
    ax_lat.set_ylabel("ms")
    ax_lat.legend()
    ax_lat.margins(y=0.15)

    cfg = doc.get("config", {})
    machine = doc.get("machine", {})
    other = [r["other_cpu_pct"] for s in stacks for r in s["rounds"] if r.get("other_cpu_pct") is not None]
    fig.suptitle(
        f"{str(cfg.get('endpoint', 'GET ?')).split(' (', maxsplit=1)[0]}, wrk -t{cfg.get('threads', '?')} -c{cfg.get('connections', '?')} "
        f"{cfg.get('rounds', '?')} rounds x {cfg.get('duration_s', '?')} s, "
        f"{machine.get('nproc', '?')} cores {machine.get('model_name', '')}, {doc.get('date', '')}"
        + (f"\nCPU used outside the benchmark during a measured run: up to {max(other):.0f} %" if other else ""),
        fontsize=10,
    )
    for ax in (ax_rps, ax_lat):
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_line = sub.add_parser("line", help="one-line summary of a wrk output file")
    p_line.add_argument("run", type=Path)
    p_report = sub.add_parser("report", help="table on stdout and the JSON report")
    p_report.add_argument("raw_dir", type=Path)
    p_report.add_argument("--meta", type=Path, help="key=value file (default RAW_DIR/meta.txt)")
    p_report.add_argument("--json", type=Path, required=True)
    p_plot = sub.add_parser("plot", help="PNG bar chart from the JSON report (needs matplotlib)")
    p_plot.add_argument("json", type=Path)
    p_plot.add_argument("png", type=Path)
    args = parser.parse_args(argv)

    if args.command == "line":
        print(line(parse_wrk(args.run.read_text())))
    elif args.command == "report":
        meta_path = args.meta or args.raw_dir / "meta.txt"
        meta = parse_meta(meta_path.read_text()) if meta_path.exists() else {}
        runs = load_runs(args.raw_dir)
        if not runs:
            print(f"no r<round>-<stack>.txt files in {args.raw_dir}", file=sys.stderr)
            return 1
        summaries, ratios = build(runs)
        print(format_table(summaries, ratios, meta))
        args.json.write_text(json.dumps(report_json(summaries, ratios, runs, meta), indent=2) + "\n")
    else:
        plot(json.loads(args.json.read_text()), args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
