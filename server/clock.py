"""The wall clock as the shop's records keep it: Unix time in milliseconds."""
from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
