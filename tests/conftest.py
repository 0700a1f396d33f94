"""Makes tests/ importable, shares the harness fixtures with every test folder, and sets the
Hypothesis profile: a busy machine generates examples slowly, which is never a test failure."""
from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from harness import lc, session  # noqa: E402,F401  (fixtures)

# No per-example deadline and no "too slow" health check: both fail on a wall-clock budget.
settings.register_profile("livecart", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("livecart")
