"""A real Redis Cluster on loopback: N masters (+ replicas) from the redis-server binary, made by redis-cli."""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import free_port


class RedisCluster:
    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        self.dir, self.masters, self.replicas = directory, masters, replicas
        n = masters * (1 + replicas)
        ports: list[int] = []
        while len(ports) < 2 * n:  # client and cluster-bus ports, all distinct, all taken up front
            port = free_port()
            if port not in ports:
                ports.append(port)
        self.ports, self.bus_ports = ports[:n], dict(zip(ports[:n], ports[n:]))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[: self.masters])

    def start(self) -> "RedisCluster":
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed (make system-deps installs redis-server, redis-tools)")
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            self._wait(lambda: self.cli(port, "PING") == "PONG", f"node {port} did not start")
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                  "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        for port in self.ports:
            self._wait(lambda: "cluster_state:ok" in self.cli(port, "CLUSTER", "INFO"), "cluster not ok")
        if self.replicas:
            self._wait(self._replicas_synced, "replicas did not sync")
        return self

    def _start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self.bus_ports[port]), "--cluster-node-timeout", "2000",
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--protected-mode", "no", "--loglevel", "warning"]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _replicas_synced(self) -> bool:
        # Every replica attached and synced, and every master knows it: before that a client's
        # slots map shows no replica, and a write would be acknowledged without one.
        infos = [self.cli(p, "INFO", "replication") for p in self.ports]
        synced = sum("role:slave" in i and "master_link_status:up" in i for i in infos)
        known = sum(f"connected_slaves:{self.replicas}" in i for i in infos if "role:master" in i)
        slots = self.cli(self.ports[0], "CLUSTER", "SLOTS").count("\n")  # replicas listed too
        return synced == self.masters * self.replicas and known == self.masters and slots > 0

    @staticmethod
    def _wait(check, message: str, bound: float = 60) -> None:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(message)

    def cli(self, port: int, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, timeout=10)
        return out.stdout.decode().strip()

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot."""
        slot = int(self.cli(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for line in self.cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return int(fields[1].split(":")[1].split("@")[0])
        raise LookupError(key)

    def replica_of(self, master: int) -> int:
        """The port of a replica of the master on `master`."""
        nodes = [line.split() for line in self.cli(self.ports[0], "CLUSTER", "NODES").splitlines()]
        master_id = next(f[0] for f in nodes if f[1].split("@")[0].endswith(f":{master}"))
        return next(int(f[1].split(":")[1].split("@")[0]) for f in nodes if f[3] == master_id)

    def pause(self, port: int, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) a node: it keeps its connections but answers nothing."""
        self.procs[port].send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        for port in list(self.procs):
            self.kill(port)


@pytest.fixture
def redis_cluster(tmp_path: Path):
    cluster = RedisCluster(tmp_path / "cluster").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_with_replicas(tmp_path: Path):
    cluster = RedisCluster(tmp_path / "cluster", replicas=1).start()
    yield cluster
    cluster.stop()
