"""bench/flash_sale.py at a small scale, on two real processes and a real Redis: shoppers racing for the
last units never oversell (checked against the store), and every /ws/stock viewer hears sold-out."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from processes import ServerProcess
from redis_server import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from flash_sale import flash_sale  # noqa: E402


@pytest.fixture
def two_processes(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis").start()
    procs = [ServerProcess(tmp_path / f"data{i}", "--store", redis.url, "--bus", redis.url).start()
             for i in range(2)]
    yield procs
    for p in procs:
        p.stop()
    redis.kill()


async def test_a_flash_sale_oversells_nothing_and_every_viewer_hears_sold_out(two_processes) -> None:
    pids = {f"livecart{i}": p.proc.pid for i, p in enumerate(two_processes)}
    r = await flash_sale([p.base for p in two_processes], pids, units=10, viewers=50, shoppers=40)
    assert r["store"] == {"onHand": 10, "held": 10, "available": 0}
    assert r["granted_in_docs"] == 10 and r["oversold"] == 0
    assert r["viewers_told"] == 50
