"""The benchmarks of bench/ run end to end at a tiny scale, so that `make bench` keeps working: each
finishes, prints its figures and loses nothing (the figures themselves are not judged here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


def bench(script: str, *args: str) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def test_customer_search_prints_p99_by_text_and_by_sku_on_both_backends() -> None:
    out = bench("customers.py", "--customers", "300", "--lines", "2000", "--skus", "50", "--queries", "20")
    for backend in ("sqlite", "redis"):
        assert re.search(rf"^{backend}\s+300 customers, 2,000 order lines", out, re.M), out
    assert len(re.findall(r"search by (text|sku)\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms", out)) == 4, out


def test_a_mailing_reaches_every_recipient() -> None:
    out = bench("mailing.py", "--recipients", "50")
    assert re.search(r"mailing of 50 recipients: 50 sent, 0 failed in [\d.]+ s = [\d,]+ mails/s", out), out


def test_the_shop_floor_sees_every_view_of_the_browsing_bench() -> None:
    out = bench("browsing.py", "--clients", "20", "--seconds", "2", "--workers", "1")
    sent = int(re.search(r"view messages\s+([\d,]+)", out)[1].replace(",", ""))  # type: ignore[index]
    assert sent > 0, out
    assert re.search(rf"shop floor saw\s+{sent:,} of them", out), out
    assert re.search(r"delay to the shop floor: p50 [\d.]+ ms, p99 [\d.]+ ms", out), out
    assert "events dropped for the slow shop floor: 0" in out, out


def test_the_room_bench_prints_cpu_per_edit() -> None:
    out = bench("room.py", "--carts", "10", "--edits", "60")
    assert re.search(r"40 edits over 10 carts × 3 clients: [\d,]+ µs of event-loop CPU per edit", out), out
