"""One process at a time owns an embedded data dir (the stock actor must be the only writer of stock)."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click


@contextmanager
def data_dir_lock(data_dir: Path, who: str) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "livecart.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise click.ClickException(
                f"{data_dir} is in use by {holder}; stop it first (or give another --data-dir)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"livecart {who} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)
