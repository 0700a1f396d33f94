"""Reads and writes of a doc's maps through pycrdt's compiled layer, for the per-edit path.

pycrdt's Python wrappers open (or join) a transaction and wrap the value on every single read,
about 2–5 µs each; checking one edited line takes a dozen reads. Here a line's fields come out
in one pass inside one transaction, and the server's plain-value writes skip the per-key
wrapper too. A client update is applied, and the state vector read, in one transaction.
This leans on pycrdt internals (`Transaction._txn`, `Doc._doc` and the compiled types'
`get`/`keys`/`insert`/`remove`), which is why pyproject pins pycrdt to 0.14.x; the
validation and settle tests cover every rule and write made this way.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from pycrdt import Doc, Subscription
from pycrdt._pycrdt import Map as RawMap  # the compiled type behind pycrdt.Map

__all__ = ["RawMap", "apply_update", "fields", "is_panic", "observe", "transaction"]


def apply_update(doc: Doc, update: bytes) -> bytes:
    """Applies an update and returns the doc's state vector after it: one transaction, not two."""
    with doc.transaction() as txn:
        doc._doc.apply_update(txn._txn, update)
        return doc._doc.get_state(txn._txn)  # type: ignore[no-any-return]


@contextmanager
def transaction(doc: Doc, origin: Any = None) -> Iterator[Any]:
    """A transaction (joining the current one, if any), with an origin for writes; yields the
    compiled transaction, for `RawMap.get/keys` and `RawMap.insert(txn, key, plain_value)` /
    `RawMap.remove(txn, key)`."""
    with doc.transaction(origin=origin) as txn:
        yield txn._txn


def fields(raw: RawMap, txn: Any) -> dict[str, Any]:
    """A map's entries: plain values as they are, shared types as compiled objects
    (so a type check tells a nested Y.Map, Y.Text or Y.Array from any plain value)."""
    return {key: raw.get(txn, key) for key in raw.keys(txn)}


def observe(doc: Doc, callback: Callable[[Any], None]) -> Subscription:
    """Calls `callback` with every committed transaction's event (its `.update`).

    pycrdt's `Doc.observe` wraps the callback in a partial that holds the Doc, and yrs keeps it
    inside the doc, where Python's GC cannot see it: a cycle that is never collected (nor freed
    by `unobserve` since pycrdt 0.14, y-crdt/pycrdt#421). The compiled doc's observe takes the
    callback as it is, so a callback that holds no doc lets the doc go with its owner."""
    return doc._doc.observe(callback)  # type: ignore[no-any-return]


def is_panic(exc: BaseException) -> bool:
    """Whether pycrdt's compiled layer panicked (e.g. at an int beyond 64 bits). pyo3 raises
    that as `pyo3_runtime.PanicException`, a BaseException that no module exports by name."""
    return type(exc).__name__ == "PanicException"
