"""Makes tests/ importable and shares the harness fixtures with every test folder."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import lc, session  # noqa: E402,F401  (fixtures)
