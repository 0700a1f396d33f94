"""`livecart serve` as real child processes on loopback ports, for scale-out and crash tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import SECRET, free_port


class Loopback:
    """Something listening on a loopback `port`: its HTTP and websocket base addresses."""

    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


class ServerProcess(Loopback):
    def __init__(self, data_dir: Path, *args: str, port: int | None = None) -> None:
        self.data_dir, self.args, self.port = data_dir, args, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServerProcess":
        exe = Path(sys.executable).parent / "livecart"
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--jwt-secret", SECRET, "--room-grace", "0.5", "--log-level", "warning", *self.args],
            stdout=self.log, stderr=self.log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60  # a busy machine starts Python slowly; this only stops a hang
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"livecart exited with {self.proc.returncode}; see {self.log.name}")
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=0.5)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("livecart did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "log"):
            self.log.close()
