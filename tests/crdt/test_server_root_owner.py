"""`crdt/server_root.py` is the only writer of the document's `server` root (issue 17): no other
module of the product sets a key of it, nor of the maps under it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITES = re.compile(r"\.server(\.integrated)?\s*(\[[^\]]+\]\s*=[^=]|\.__setitem__|\.insert\(|\.pop\(|\.update\()"
                    r"|\bdel\s+[\w.]*server\[")


def test_only_server_root_writes_the_server_root() -> None:
    offenders = []
    for path in sorted([*ROOT.joinpath("crdt").rglob("*.py"), *ROOT.joinpath("server").rglob("*.py")]):
        if path.name == "server_root.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_pattern_sees_a_write() -> None:
    assert WRITES.search('cart.server["status"] = "open"') and WRITES.search("c.server.__setitem__('x', 1)")
    assert not WRITES.search('status = cart.server["status"] == "open"')
