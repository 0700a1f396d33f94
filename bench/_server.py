"""Starts a `livecart serve` child on a free loopback port for a benchmark, and tears it down."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from livecart.server import auth

SECRET = "bench-secret-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def livecart_server(*extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Yields (base URL, pid)."""
    data = Path(tempfile.mkdtemp(prefix="livecart-bench-"))
    port = free_port()
    exe = Path(sys.executable).parent / "livecart"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--data-dir", str(data), "--jwt-secret", SECRET,
         "--log-level", "warning", *extra],
        env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("livecart did not start")
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def token(sub: str, role: str = "customer") -> str:
    return auth.mint(SECRET, sub, role, ttl_seconds=3600)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
