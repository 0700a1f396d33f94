"""bench/relay's accounting tells a superseded edit (merged away by a busy server, as the contract
allows) from a lost one: its own node:test file, run here so `make test` runs it."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_relay_bench_accounting() -> None:
    node = shutil.which("node")
    assert node, "node is needed (the JS client tests need it too)"
    run = subprocess.run([node, "--test", str(ROOT / "bench/relay/test/")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout
