"""The benchmark harness reads wrk's output and writes a results page."""

from __future__ import annotations

import pytest

from bench import report
from bench.common import parse_wrk

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:18080/api/v1/predict
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.02ms    1.17ms  16.25ms   79.97%
    Req/Sec     1.15k   121.25     1.40k    74.00%
  Latency Distribution
     50%    4.87ms
     75%    5.51ms
     90%    6.40ms
     99%  850.00us
  5733 requests in 5.00s, 0.88MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1146.22
Transfer/sec:    179.15KB
"""


def test_wrk_output_is_parsed():
    """Rate, latency percentiles in ms (any unit), requests and failures."""
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["rps"] == pytest.approx(1146.22)
    assert parsed["p50_ms"] == pytest.approx(4.87)
    assert parsed["p99_ms"] == pytest.approx(0.85)
    assert (parsed["requests"], parsed["socket_errors"], parsed["non_2xx"]) == (5733, 3, 4)


def test_a_section_renders_its_targets_and_tables():
    """The page lists every target with its verdict, then each part's tables and notes."""
    section = report.Section("9. Example")
    section.target("speed", "2.0x", ">= 3x", False, evidence={"answers": 10})
    section.table("figures", ["what", "value"], [["a", 1.5]])
    section.notes.append("a note")
    machine = {"cores": 2, "cpu": "cpu", "memory_gib": 1, "python": "3.11", "os": "linux",
               "load_average": [0.1], "wrk": "wrk", "curl": "curl", "packages": {"x": "1"}}
    page = report.render({"parts": {"example": {
        "title": section.title, "date": "2026-01-01T00:00:00Z", "seconds": 1.0,
        "machine": machine, "targets": [t.__dict__ for t in section.targets],
        "tables": section.tables, "notes": section.notes}}})
    assert "| 9. Example | speed | 2.0x | >= 3x | **not met**" in page
    assert "| a | 1.5 |" in page
    assert "a note" in page
