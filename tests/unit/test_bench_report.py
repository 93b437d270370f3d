"""Unit tests for benchmarks/serving_report.py: wrk output parsing, medians, ratios, the table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from modload import load

sr = load("serving_report", "benchmarks/serving_report.py")

# Real output of wrk 4.1.0 (Debian bookworm package) captured in the benchmark container.
# wrk pads one-letter units with a blank ("1.24s "), kept as captured.

# `wrk -t2 -c64 -d10s --latency`, stack 2 of benchmarks/serving.sh, round 1.
WRK_MS = """\
Running 10s test @ http://127.0.0.1:8081/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    37.15ms   27.86ms 230.78ms   78.07%
    Req/Sec     0.94k   348.52     2.10k    63.13%
  Latency Distribution
     50%   31.62ms
     75%   49.01ms
     90%   68.30ms
     99%  139.70ms
  18776 requests in 10.04s, 6.29MB read
Requests/sec:   1870.39
Transfer/sec:    641.12KB
"""

# One connection against uvicorn: p50/p75 in microseconds.
WRK_US = """\
Running 2s test @ http://127.0.0.1:8001/healthz
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.38ms    4.46ms  50.47ms   95.18%
    Req/Sec     2.45k     0.89k    3.66k    65.00%
  Latency Distribution
     50%  304.00us
     75%  501.00us
     90%    2.36ms
     99%   25.81ms
  4870 requests in 2.01s, 665.94KB read
Requests/sec:   2428.62
Transfer/sec:    332.10KB
"""

# A handler that sleeps 1.2 s: latencies in seconds.
WRK_SECONDS = """\
Running 4s test @ http://127.0.0.1:8099/slow
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23s    19.80ms   1.24s    66.67%
    Req/Sec     9.00     14.07    30.00     75.00%
  Latency Distribution
     50%    1.24s\x20
     75%    1.24s\x20
     90%    1.24s\x20
     99%    1.24s\x20
  12 requests in 4.03s, 1.31KB read
Requests/sec:      2.98
Transfer/sec:     333.51B
"""

# A server answering 503.
WRK_NON_2XX = """\
Running 1s test @ http://127.0.0.1:8099/fail
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    43.54ms   10.47ms  67.75ms   91.11%
    Req/Sec    45.00      7.07    60.00     90.00%
  Latency Distribution
     50%   44.00ms
     75%   44.60ms
     90%   47.95ms
     99%   67.75ms
  45 requests in 1.00s, 5.92KB read
  Non-2xx or 3xx responses: 45
Requests/sec:     44.92
Transfer/sec:      5.91KB
"""

# Every request timed out (--timeout 1s against the 1.2 s handler): zero latencies, -nan%.
WRK_TIMEOUTS = """\
Running 3s test @ http://127.0.0.1:8099/slow
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     3.00      0.00     3.00    100.00%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  8 requests in 3.02s, 0.88KB read
  Socket errors: connect 0, read 0, write 0, timeout 8
Requests/sec:      2.65
Transfer/sec:     296.39B
"""

# A warm-up run (no --latency): no Latency Distribution.
WRK_NO_LATENCY_FLAG = """\
Running 3s test @ http://127.0.0.1:80/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.70ms   21.01ms 173.64ms   91.55%
    Req/Sec     1.78k   755.71     3.03k    64.41%
  10528 requests in 3.04s, 3.63MB read
Requests/sec:   3465.54
Transfer/sec:      1.20MB
"""

# Not captured: the format of wrk built from master and of some forks (eight percentiles, three
# decimals, "%7.3Lf%%" in print_stats_latency), written out by hand.
WRK_EIGHT_PERCENTILES = """\
Running 1m test @ http://127.0.0.1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  521.00us  12.00ms   90.00%
    Req/Sec    10.30k   800.00    11.90k    75.00%
  Latency Distribution
     50.000%    3.02ms
     75.000%    3.40ms
     90.000%    3.77ms
     99.000%    5.01ms
     99.900%    8.40ms
     99.990%   11.00ms
     99.999%   12.00ms
    100.000%   12.00ms
  1236000 requests in 1.00m, 250.00MB read
Requests/sec:  20600.00
Transfer/sec:      4.17MB
"""


def run(rps: float, p50: float, p99: float, errors: int = 0) -> object:
    return sr.WrkRun(
        requests_per_sec=rps,
        requests=int(rps * 10),
        duration_s=10.0,
        latency_ms={50.0: p50, 75.0: p50, 90.0: p99, 99.0: p99},
        latency_avg_ms=p50,
        latency_max_ms=p99 * 2,
        non_2xx_3xx=errors,
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("812.00us", 0.812),
        ("4.80ms", 4.8),
        ("41.07ms", 41.07),
        ("1.02s", 1020.0),
        ("1.51s ", 1510.0),
        ("1.00m", 60_000.0),
        ("10us", 0.01),
    ],
)
def test_parse_duration_units(text: str, ms: float) -> None:
    assert sr.parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "4.80", "ms", "4.80 kb", "-1ms", "4.8.0ms"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(sr.WrkParseError):
        sr.parse_duration_ms(text)


def test_parse_wrk_milliseconds() -> None:
    r = sr.parse_wrk(WRK_MS)
    assert r.requests_per_sec == pytest.approx(1870.39)
    assert r.requests == 18776
    assert r.duration_s == pytest.approx(10.04)
    assert r.latency_ms == pytest.approx({50.0: 31.62, 75.0: 49.01, 90.0: 68.3, 99.0: 139.7})
    assert (r.p50_ms, r.p99_ms) == pytest.approx((31.62, 139.7))
    assert r.latency_avg_ms == pytest.approx(37.15)
    assert r.latency_max_ms == pytest.approx(230.78)
    assert r.errors == 0
    assert r.socket_errors == {}


def test_parse_wrk_microseconds() -> None:
    r = sr.parse_wrk(WRK_US)
    assert r.latency_ms == pytest.approx({50.0: 0.304, 75.0: 0.501, 90.0: 2.36, 99.0: 25.81})
    assert r.latency_avg_ms == pytest.approx(1.38)
    assert r.latency_max_ms == pytest.approx(50.47)
    assert r.requests == 4870
    assert r.duration_s == pytest.approx(2.01)
    assert r.requests_per_sec == pytest.approx(2428.62)


def test_parse_wrk_seconds() -> None:
    r = sr.parse_wrk(WRK_SECONDS)
    assert r.latency_ms == pytest.approx({50.0: 1240.0, 75.0: 1240.0, 90.0: 1240.0, 99.0: 1240.0})
    assert r.latency_avg_ms == pytest.approx(1230.0)
    assert r.latency_max_ms == pytest.approx(1240.0)
    assert (r.requests, r.requests_per_sec, r.errors) == (12, pytest.approx(2.98), 0)


def test_parse_wrk_non_2xx() -> None:
    r = sr.parse_wrk(WRK_NON_2XX)
    assert r.non_2xx_3xx == 45
    assert r.socket_errors == {}
    assert r.errors == 45
    assert r.p99_ms == pytest.approx(67.75)


def test_parse_wrk_socket_errors() -> None:
    r = sr.parse_wrk(WRK_TIMEOUTS)
    assert r.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 8}
    assert r.errors == 8
    assert (r.p50_ms, r.p99_ms, r.latency_max_ms) == (0.0, 0.0, 0.0)
    assert r.requests_per_sec == pytest.approx(2.65)


def test_parse_wrk_eight_percentiles_and_minutes() -> None:
    r = sr.parse_wrk(WRK_EIGHT_PERCENTILES)
    assert sorted(r.latency_ms) == [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0]
    assert r.p99_ms == pytest.approx(5.01)
    assert r.duration_s == pytest.approx(60.0)
    assert r.requests == 1236000


def test_parse_wrk_without_latency_flag_says_so() -> None:
    with pytest.raises(sr.WrkParseError, match="--latency"):
        sr.parse_wrk(WRK_NO_LATENCY_FLAG)


def test_parse_wrk_truncated_output_fails() -> None:
    truncated = WRK_MS.split("  18776 requests", maxsplit=1)[0]
    with pytest.raises(sr.WrkParseError, match="Requests/sec"):
        sr.parse_wrk(truncated)
    with pytest.raises(sr.WrkParseError):
        sr.parse_wrk("unable to connect to 127.0.0.1:8001 Connection refused\n")


def test_summarize_takes_each_metric_median_separately() -> None:
    s = sr.summarize("role", [run(1000, 5.0, 30.0), run(3000, 1.0, 10.0), run(2000, 9.0, 20.0, errors=2)])
    assert s.rounds == 3
    assert s.rps == 2000
    assert s.p50_ms == 5.0
    assert s.p99_ms == 20.0
    assert s.errors == 2
    assert s.rps_rounds == (1000, 3000, 2000)


def test_summarize_even_rounds_and_empty() -> None:
    s = sr.summarize("x", [run(1000, 2.0, 10.0), run(2000, 4.0, 30.0)])
    assert (s.rps, s.p50_ms, s.p99_ms) == (1500, 3.0, 20.0)
    with pytest.raises(ValueError):
        sr.summarize("x", [])


def test_ratio() -> None:
    role = sr.summarize("role", [run(6000, 4.0, 12.0)])
    tutorial = sr.summarize("tutorial", [run(3000, 8.0, 48.0)])
    r = sr.ratio(role, tutorial)
    assert (r.numerator, r.denominator) == ("role", "tutorial")
    assert (r.rps, r.p50, r.p99) == pytest.approx((2.0, 0.5, 0.25))
    zero = sr.summarize("zero", [run(0, 0.0, 0.0)])
    assert math.isnan(sr.ratio(role, zero).rps)


def test_build_orders_stacks_and_computes_3_over_2_and_3_over_1() -> None:
    runs = {
        "role": [run(6000, 4.0, 12.0)],
        "uvicorn": [run(8000, 3.0, 9.0)],
        "tutorial": [run(3000, 8.0, 48.0)],
    }
    summaries, ratios = sr.build(runs)
    assert [s.key for s in summaries] == ["uvicorn", "tutorial", "role"]
    assert [(r.numerator, r.denominator) for r in ratios] == [("role", "tutorial"), ("role", "uvicorn")]
    assert ratios[0].rps == pytest.approx(2.0)
    assert ratios[1].rps == pytest.approx(0.75)
    assert ratios[1].p99 == pytest.approx(12.0 / 9.0)


def test_format_table() -> None:
    runs = {
        "uvicorn": [run(8000, 3.0, 9.0), run(8200, 3.1, 9.5)],
        "tutorial": [run(3000, 8.0, 48.0), run(3100, 8.0, 250.0)],
        "role": [run(6000, 4.0, 12.0), run(6100, 4.2, 12.5)],
    }
    meta = sr.parse_meta("stack.role.label=role defaults\nstack.tutorial.label=tutorial recipe\n")
    table = sr.format_table(*sr.build(runs), meta)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["#", "stack", "rps", "p50", "p99", "errors"]
    assert any(l.startswith("1  uvicorn ") and "8100" in l and "8000 8200" in l for l in lines)
    assert any(l.startswith("2  tutorial recipe") and "149 ms" in l for l in lines)  # median of 48, 250
    assert any(l.startswith("3  role defaults") and "4.10 ms" in l and "12.25 ms" in l for l in lines)
    assert any("ratio 3/2" in l and "1.98x" in l and "0.08x" in l for l in lines)
    assert any("ratio 3/1" in l and "0.75x" in l for l in lines)


def test_parse_meta() -> None:
    meta = sr.parse_meta(
        "# comment\n"
        "date=2025-01-01T00:00:00Z\n"
        "machine.nproc=2\n"
        "machine.model_name=AMD EPYC 7B13\n"
        "versions.debian=12.12\n"
        "stack.tutorial.command=gunicorn -k uvicorn.workers.UvicornWorker -w 5 -b 127.0.0.1:8000 x:app\n"
        "stack.tutorial.url=http://127.0.0.1:8081/?a=b\n"
        "\n"
    )
    assert meta["machine"] == {"nproc": 2, "model_name": "AMD EPYC 7B13"}
    assert meta["versions"]["debian"] == "12.12"
    assert meta["stack"]["tutorial"]["url"] == "http://127.0.0.1:8081/?a=b"
    assert meta["date"] == "2025-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        sr.parse_meta("no equals sign\n")
    with pytest.raises(ValueError):
        sr.parse_meta("a=1\na.b=2\n")


def test_load_runs_orders_rounds_numerically(tmp_path: Path) -> None:
    for rnd, rps in ((1, "100.00"), (2, "200.00"), (10, "1000.00")):
        (tmp_path / f"r{rnd}-role.txt").write_text(WRK_MS.replace("1870.39", rps))
    (tmp_path / "r1-uvicorn.txt").write_text(WRK_US)
    (tmp_path / "meta.txt").write_text("machine.nproc=2\n")
    runs = sr.load_runs(tmp_path)
    assert sorted(runs) == ["role", "uvicorn"]
    assert [r.requests_per_sec for r in runs["role"]] == [100.0, 200.0, 1000.0]
    (tmp_path / "r3-role.txt").write_text("wrk: connection refused\n")
    with pytest.raises(sr.WrkParseError, match="r3-role.txt"):
        sr.load_runs(tmp_path)


def test_cli_report_writes_json_and_prints_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for rnd in (1, 2, 3):
        (raw / f"r{rnd}-uvicorn.txt").write_text(WRK_EIGHT_PERCENTILES)
        (raw / f"r{rnd}-tutorial.txt").write_text(WRK_NON_2XX)
        (raw / f"r{rnd}-role.txt").write_text(WRK_MS)
    (raw / "meta.txt").write_text(
        "machine.nproc=2\nconfig.rounds=3\nstack.role.label=3 role\nstack.role.url=http://127.0.0.1/\n"
    )
    out = tmp_path / "serving.json"
    assert sr.main(["report", str(raw), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "ratio 3/2" in table and "ratio 3/1" in table
    doc = json.loads(out.read_text())
    assert doc["machine"] == {"nproc": 2}
    assert [s["key"] for s in doc["stacks"]] == ["uvicorn", "tutorial", "role"]
    role = doc["stacks"][2]
    assert role["url"] == "http://127.0.0.1/"
    assert role["median"] == pytest.approx({"rps": 1870.39, "p50_ms": 31.62, "p99_ms": 139.7})
    assert len(role["rounds"]) == 3 and role["rounds"][0]["latency_ms"]["p99"] == pytest.approx(139.7)
    assert doc["stacks"][1]["errors"] == 3 * 45
    assert [r["name"] for r in doc["ratios"]] == ["3/2", "3/1"]
    assert doc["ratios"][0]["rps"] == pytest.approx(1870.39 / 44.92)
    assert doc["ratios"][1]["p99"] == pytest.approx(139.7 / 5.01)


def test_cli_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r1-tutorial.txt"
    path.write_text(WRK_SECONDS)
    assert sr.main(["line", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "3 rps, p50 1240 ms, p99 1240 ms"
    path.write_text(WRK_TIMEOUTS)
    assert sr.main(["line", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "3 rps, p50 0.00 ms, p99 0.00 ms, 8 ERRORS"


def test_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    raw = tmp_path / "raw"
    raw.mkdir()
    for key in sr.STACK_ORDER:
        (raw / f"r1-{key}.txt").write_text(WRK_MS)
    out = tmp_path / "serving.json"
    sr.main(["report", str(raw), "--json", str(out)])
    png = tmp_path / "serving.png"
    assert sr.main(["plot", str(out), str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interference_column_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta_text = (
        "interference.uvicorn.r1=0.4\ninterference.uvicorn.r2=1.6\n"
        "interference.tutorial.r1=0.2\ninterference.tutorial.r2=37.5\n"
        "interference.role.r1=0.0\ninterference.role.r2=2.0\n"
    )
    meta = sr.parse_meta(meta_text)
    assert sr.interference(meta, "tutorial") == {1: 0.2, 2: 37.5}
    assert sr.interference(meta, "missing") == {}
    assert sr.interference({}, "role") == {}

    raw = tmp_path / "raw"
    raw.mkdir()
    for rnd in (1, 2):
        for key in sr.STACK_ORDER:
            (raw / f"r{rnd}-{key}.txt").write_text(WRK_MS)
    (raw / "meta.txt").write_text(meta_text)
    out = tmp_path / "serving.json"
    assert sr.main(["report", str(raw), "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "other CPU" in lines[0]
    assert any(l.startswith("2  tutorial") and " 38% " in l for l in lines)  # worst round, rounded
    assert any(l.startswith("3  role") and " 2% " in l for l in lines)
    doc = json.loads(out.read_text())
    assert "interference" not in doc
    assert [r["other_cpu_pct"] for r in doc["stacks"][1]["rounds"]] == [0.2, 37.5]


def test_no_interference_column_without_measurements() -> None:
    table = sr.format_table(*sr.build({"role": [run(6000, 4.0, 12.0)]}))
    assert "other CPU" not in table
