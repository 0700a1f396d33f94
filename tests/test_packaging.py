"""`pip install .` gives one import package, `livecart`, and a working `livecart` command."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_only_the_livecart_package(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("livecart-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"livecart", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    # every module of the source tree is in the wheel (a subpackage missing from pyproject breaks `pip install .`)
    for folder, package in (("crdt", "livecart/crdt"), ("server", "livecart/server")):
        for module in (ROOT / folder).rglob("*.py"):
            assert f"{package}/{module.relative_to(ROOT / folder)}" in names, module
    assert "livecart/server/static/livecart.js" in names and "livecart/server/static/storefront.html" in names
    assert "livecart/server/mail/templates/order.html" in names  # mail templates travel with the code
    assert not any(n.startswith("livecart/__init__") for n in names)  # a namespace, nothing generic
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "livecart = livecart.server.cli:main" in entry


def test_building_prints_no_packaging_warnings(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
                           check=True, capture_output=True, text=True)
    output = built.stdout + built.stderr
    for warning in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "is absent from the `packages`",
                    "deprecated"):
        assert warning not in output, output[-4000:]
