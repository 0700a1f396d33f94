"""`livecart import`: CSV and JSON Lines, line-numbered errors, all or nothing, never beside a running server."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from livecart.server.cli import main
from livecart.server.lock import data_dir_lock
from livecart.server.store import HoldRow, open_store

CSV = """sku,name,price,currency,maxQty,onHand
MUG,Mug,1290,EUR,10,40
LAST,One of a kind,4800,EUR,1,1
"""


async def stored(data_dir: Path) -> tuple[dict, dict]:
    store = open_store("sqlite", data_dir)
    await store.open()
    products = await store.list_products()
    on_hand, _ = await store.load_stock()
    await store.close()
    return products, on_hand


def run_import(tmp_path: Path, name: str, text: str) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    result = CliRunner().invoke(main, ["import", str(path), "--data-dir", str(tmp_path / "data")])
    return result.exit_code, result.output


def test_csv_import_sets_catalog_and_stock(tmp_path: Path) -> None:
    code, out = run_import(tmp_path, "shop.csv", CSV)
    assert code == 0, out
    products, on_hand = asyncio.run(stored(tmp_path / "data"))
    assert products["MUG"]["price"] == 1290 and products["LAST"]["maxQty"] == 1
    assert on_hand == {"MUG": 40, "LAST": 1}


def test_jsonl_import_with_personalisation(tmp_path: Path) -> None:
    rows = [{"sku": "INVITE", "name": "Invitations", "price": 18900, "onHand": 500,
             "personalisation": {"names": {"kind": "text", "maxLength": 120, "required": True}}},
            {"sku": "MUG", "name": "Mug", "price": 900}]
    code, out = run_import(tmp_path, "shop.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert code == 0, out
    products, on_hand = asyncio.run(stored(tmp_path / "data"))
    assert products["INVITE"]["personalisation"]["names"]["required"] is True
    assert on_hand == {"INVITE": 500}


def test_bad_rows_are_reported_by_line_and_nothing_changes(tmp_path: Path) -> None:
    assert run_import(tmp_path, "first.csv", CSV)[0] == 0
    code, out = run_import(tmp_path, "bad.csv", "sku,name,price,onHand\nNEW,New,100,5\nMUG,Mug,-1,3\nX,,100,1\nY,Y,abc,1\n")
    assert code != 0
    assert "bad.csv:line 3: MUG: price must be" in out
    assert "line 4: X: name must be" in out and "line 5: price must be a whole number" in out
    assert "nothing was imported" in out
    products, on_hand = asyncio.run(stored(tmp_path / "data"))
    assert "NEW" not in products and on_hand["MUG"] == 40


def test_on_hand_below_held_is_refused_whole(tmp_path: Path) -> None:
    assert run_import(tmp_path, "first.csv", CSV)[0] == 0

    async def hold() -> None:
        store = open_store("sqlite", tmp_path / "data")
        await store.open()
        await store.save_stock({}, [HoldRow("c1", "l1", "MUG", 30, 2**40)], [])
        await store.close()
    asyncio.run(hold())
    code, out = run_import(tmp_path, "low.csv", "sku,name,price,onHand\nNEW,New,100,5\nMUG,Mug,100,10\n")
    assert code != 0 and "MUG: onHand 10 is below the 30 units held" in out
    products, _ = asyncio.run(stored(tmp_path / "data"))
    assert "NEW" not in products


def test_import_refuses_a_data_dir_a_server_is_using(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(CSV)
    with data_dir_lock(tmp_path / "data", "serve"):
        out = subprocess.run([sys.executable, "-m", "livecart.server.cli", "import", str(tmp_path / "shop.csv"),
                              "--data-dir", str(tmp_path / "data")], capture_output=True, text=True)
    assert out.returncode != 0 and "in use by livecart serve" in out.stderr


def test_sigterm_during_an_import_leaves_all_or_nothing(tmp_path: Path) -> None:
    """SIGTERM while a big file is checked: a clear message, exit 1, nothing imported (had it come during the
    write, the write finishes first and everything is there: never half)."""
    rows = 300_000
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write("sku,name,price,currency,maxQty,onHand\n")
        f.writelines(f"SKU{i},Thing {i},100,EUR,5,10\n" for i in range(rows))
    exe = Path(sys.executable).parent / "livecart"
    proc = subprocess.Popen([str(exe), "import", str(big), "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    seen = b""
    while b"checking:" not in seen and proc.poll() is None:  # the progress bar: the rows are being checked
        seen += proc.stderr.read1(4096)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    products, on_hand = asyncio.run(stored(tmp_path / "data"))
    if proc.returncode == 1:
        assert b"stopped by SIGTERM" in err and b"nothing was imported" in err
        assert products == {} and on_hand == {}
    else:  # the machine was fast: the write had begun, and it finished whole
        assert proc.returncode == 0, err[-2000:]
        assert len(products) == rows and len(on_hand) == rows
