"""The README works when pasted: every shell block of "Trying it by hand" runs, as written, against a server
started the way `make run` starts it, in a folder laid out like a fresh clone after `make run`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from harness import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
VENV = Path(sys.executable).parent.parent


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)


BLOCKS = shell_blocks(section("Trying it by hand"))


def test_the_first_block_is_make_run_and_make_run_serves_the_demo_with_what_serving_needs() -> None:
    assert BLOCKS and BLOCKS[0].split("#")[0].strip() == "make run"
    recipe = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "run"], capture_output=True, text=True,
                            check=True).stdout
    assert ".venv/bin/livecart demo" in recipe
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert installs and all(line.rstrip().endswith("-e .") for line in installs), installs  # no test extras


def test_the_readme_links_the_contract_in_the_repo() -> None:
    assert "](docs/DESIGN.md)" in README and (ROOT / "docs" / "DESIGN.md").is_file()
    assert "../shared" not in README


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[tuple[Path, int, str]]:
    """A folder like the clone after `make run`: `.venv` (this one), `./data`, and `livecart demo` running
    there on a free port (the README's 8080 is rewritten to it)."""
    (tmp_path / ".venv").symlink_to(VENV)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([".venv/bin/livecart", "demo"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "LIVECART_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60  # a busy machine starts Python slowly; this only stops a hang
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield tmp_path, port, log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)


def test_every_block_of_trying_it_by_hand_runs_as_pasted(clone: tuple[Path, int, str]) -> None:
    folder, port, started = clone
    # what `make run` prints names the pages, the docs and how to get a staff token
    for needed in ("/admin", "/assistant", "/api/docs", "/metrics", "token --sub root --role admin"):
        assert needed in started, started
    assert len(BLOCKS) >= 3
    outputs = []
    for block in BLOCKS[1:]:
        script = block.replace("localhost:8080", f"localhost:{port}").replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, (block, result.stdout, result.stderr)
        assert '"error"' not in result.stdout, (block, result.stdout)
        assert result.stdout.strip(), block  # every block shows something
        outputs.append(result.stdout)
    assert '"MUG-CLASSIC"' in outputs[0] and '"held"' in outputs[0]  # the cart shows the line and its hold
