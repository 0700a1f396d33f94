"""bench/flash_sale.py at a small scale, on two real processes and a real Redis (and a real Redis Cluster):
shoppers racing for the last units never oversell (checked against the store), and every /ws/stock viewer
hears sold-out."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from processes import ServerProcess
from redis_cluster import RedisCluster
from redis_server import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from flash_sale import flash_sale  # noqa: E402


def two_processes_on(url: str, tmp_path: Path) -> list[ServerProcess]:
    return [ServerProcess(tmp_path / f"data{i}", "--store", url, "--bus", url).start() for i in range(2)]


@pytest.fixture
def on_redis(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis").start()
    procs = two_processes_on(redis.url, tmp_path)
    yield procs
    for p in procs:
        p.stop()
    redis.kill()


@pytest.fixture
def on_cluster(tmp_path: Path):
    cluster = RedisCluster(tmp_path / "cluster").start()
    procs = two_processes_on(cluster.url, tmp_path)
    yield procs
    for p in procs:
        p.stop()
    cluster.stop()


async def sale(procs: list[ServerProcess], viewers: int) -> dict:
    pids = {f"livecart{i}": p.proc.pid for i, p in enumerate(procs)}
    return await flash_sale([p.base for p in procs], pids, units=10, viewers=viewers, shoppers=40)


async def test_a_flash_sale_oversells_nothing_and_every_viewer_hears_sold_out(on_redis) -> None:
    r = await sale(on_redis, viewers=50)
    assert r["store"] == {"onHand": 10, "held": 10, "available": 0}
    assert r["granted_in_docs"] == 10 and r["oversold"] == 0
    assert r["viewers_told"] == 50


async def test_on_a_cluster_more_viewers_than_the_client_pool_all_hear_sold_out(on_cluster) -> None:
    # 100 viewers a process, joining at once: more than the cluster client's 64 connections a node
    # (each viewer's first read is a stock level); they wait for a connection instead of being dropped
    r = await sale(on_cluster, viewers=200)
    assert r["store"] == {"onHand": 10, "held": 10, "available": 0}
    assert r["granted_in_docs"] == 10 and r["oversold"] == 0
    assert r["viewers_told"] == 200
