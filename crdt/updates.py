"""Reads the shape of a Yjs v1 update (which ids it adds, which it deletes) without applying it."""
from __future__ import annotations

from dataclasses import dataclass, field


class MalformedUpdate(ValueError):
    """The bytes are not a Yjs v1 update."""


@dataclass
class UpdateShape:
    """Clock ranges an update adds per client and the ranges its delete set removes."""

    adds: dict[int, tuple[int, int]] = field(default_factory=dict)  # client -> (start, end)
    deletes: list[tuple[int, int, int]] = field(default_factory=list)  # (client, clock, len)
    structs: int = field(default=0, compare=False)
    # Shared types the update creates: item id -> Yjs type ref (0 array, 1 map, 2 text, …).
    types: dict[tuple[int, int], int] = field(default_factory=dict, compare=False)
    # Parents (a root name or a type's item id) that receive keyless (list) content.
    keyless: list[str | tuple[int, int]] = field(default_factory=list, compare=False)
    # Parents (a root name or a type's item id) that receive keyed (map) content.
    keyed: list[str | tuple[int, int]] = field(default_factory=list, compare=False)
    # Root names the update's items name as their parent (only such items can create a root).
    roots: set[str] = field(default_factory=set, compare=False)

    def max_growth(self, size: int) -> int:
        """An upper bound on how much applying this update (of `size` bytes) grows a doc's encoding.

        Besides its own bytes, each struct may split an existing item where it is
        inserted, and each deleted range may split items at both ends; a split costs
        at most one item header (info byte plus two ids: ≤ 32 bytes). Each client adds
        at most one block header in the doc's struct section.
        """
        return size + 32 * (self.structs + 2 * len(self.deletes)) + 24 * len(self.adds)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def byte(self) -> int:
        try:
            b = self.buf[self.pos]
        except IndexError:
            raise MalformedUpdate("update ends early") from None
        self.pos += 1
        return b

    def uint(self) -> int:
        # Reads bytes straight from the buffer: this runs a few dozen times per edit.
        buf, pos = self.buf, self.pos
        try:
            b = buf[pos]
            pos += 1
            num, shift = b & 0x7F, 7
            while b >= 0x80:
                if shift > 70:
                    raise MalformedUpdate("varuint too long")
                b = buf[pos]
                pos += 1
                num |= (b & 0x7F) << shift
                shift += 7
        except IndexError:
            raise MalformedUpdate("update ends early") from None
        self.pos = pos
        return num

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise MalformedUpdate("update ends early")
        self.pos += n

    def string(self) -> str:
        n = self.uint()
        start = self.pos
        self.skip(n)
        try:
            return self.buf[start : self.pos].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedUpdate("invalid utf-8 in string") from None

    def skip_string(self) -> None:
        self.skip(self.uint())

    def skip_varint(self) -> None:
        b = self.byte()
        while b & 0x80:
            b = self.byte()

    def skip_any(self, depth: int = 0) -> None:
        if depth > 64:
            raise MalformedUpdate("value nested too deeply")
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:
            self.skip_varint()
        elif tag == 124:
            self.skip(4)
        elif tag in (123, 122):
            self.skip(8)
        elif tag in (119, 116):  # string, bytes
            self.skip_string()
        elif tag == 118:  # object
            for _ in range(self.uint()):
                self.skip_string()
                self.skip_any(depth + 1)
        elif tag == 117:  # array
            for _ in range(self.uint()):
                self.skip_any(depth + 1)
        else:
            raise MalformedUpdate(f"unknown value tag {tag}")


def _content_length(r: _Reader, ref: int) -> int:
    """Skips an item's content and returns its length in clock ticks."""
    if ref == 1:  # deleted
        return r.uint()
    if ref == 2:  # JSON
        n = r.uint()
        for _ in range(n):
            r.skip_string()
        return n
    if ref == 3:  # binary
        r.skip_string()
        return 1
    if ref == 4:  # string: Yjs counts UTF-16 code units
        return len(r.string().encode("utf-16-le")) // 2
    if ref == 5:  # embed
        r.skip_string()
        return 1
    if ref == 6:  # format
        r.skip_string()
        r.skip_string()
        return 1
    if ref == 7:  # type
        type_ref = r.uint()
        if type_ref in (3, 5):  # XmlElement, XmlHook carry a name
            r.skip_string()
        return 1
    if ref == 8:  # any
        n = r.uint()
        for _ in range(n):
            r.skip_any()
        return n
    if ref == 9:  # subdocument
        r.skip_string()
        r.skip_any()
        return 1
    raise MalformedUpdate(f"unknown content type {ref}")


def read_shape(update: bytes) -> UpdateShape:
    """Decodes which clock ranges a v1 update adds and deletes."""
    r = _Reader(update)
    shape = UpdateShape()
    for _ in range(r.uint()):
        n_structs = r.uint()
        client = r.uint()
        start = clock = r.uint()
        shape.structs += n_structs
        for _ in range(n_structs):
            info = r.byte()
            ref = info & 0x1F
            if ref in (0, 10):  # GC, skip
                clock += r.uint()
                continue
            if info & 0x80:
                r.uint(), r.uint()
            if info & 0x40:
                r.uint(), r.uint()
            if not info & 0xC0:
                parent: str | tuple[int, int] = r.string() if r.uint() == 1 else (r.uint(), r.uint())
                if isinstance(parent, str):
                    shape.roots.add(parent)
                if info & 0x20:
                    r.skip_string()
                    shape.keyed.append(parent)
                else:
                    shape.keyless.append(parent)
            if ref == 7:
                type_ref = r.uint()
                if type_ref in (3, 5):
                    r.skip_string()
                shape.types[(client, clock)] = type_ref
                clock += 1
                continue
            clock += _content_length(r, ref)
        if client in shape.adds:
            raise MalformedUpdate("client listed twice")
        shape.adds[client] = (start, clock)
    for _ in range(r.uint()):
        client = r.uint()
        for _ in range(r.uint()):
            shape.deletes.append((client, r.uint(), r.uint()))
    if r.pos != len(update):
        raise MalformedUpdate("trailing bytes after update")
    return shape


def read_state_vector(state: bytes) -> dict[int, int]:
    """Decodes a Yjs state vector (client -> next clock)."""
    r = _Reader(state)
    return {r.uint(): r.uint() for _ in range(r.uint())}


def write_state_vector(sv: dict[int, int]) -> bytes:
    out = bytearray()
    for n in (len(sv), *(x for pair in sv.items() for x in pair)):
        while n > 0x7F:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        out.append(n)
    return bytes(out)


def missing_dependencies(shape: UpdateShape, state_after: dict[int, int]) -> str | None:
    """Names what an applied update left pending, or None when it integrated whole."""
    for client, (_start, end) in shape.adds.items():
        if state_after.get(client, 0) < end:
            return f"update has missing dependencies (client {client})"
    for client, clock, length in shape.deletes:
        if clock + length > state_after.get(client, 0):
            return f"update deletes unknown items (client {client})"
    return None


ARRAY_TYPE, MAP_TYPE = 0, 1


def keyed_in_list(shape: UpdateShape, known_types: dict[tuple[int, int], int],
                  list_roots: frozenset[str]) -> str | tuple[int, int] | None:
    """The list (root name or item id) an update puts keyed content straight under, if any:
    invisible to every list reader, so nothing would ever check it."""
    for parent in shape.keyed:
        if isinstance(parent, str):
            if parent in list_roots:
                return parent
        elif shape.types.get(parent, known_types.get(parent)) == ARRAY_TYPE:
            return parent
    return None


def keyless_in_map(shape: UpdateShape, known_types: dict[tuple[int, int], int],
                   map_roots: frozenset[str]) -> str | tuple[int, int] | None:
    """The map (root name or item id) an update puts list content straight under, if any.

    Such content is invisible to every map reader, so nothing would ever check it.
    Items that continue a list (with an origin) inherit their parent from it, so
    only items naming their parent explicitly need looking at.
    """
    for parent in shape.keyless:
        if isinstance(parent, str):
            if parent in map_roots:
                return parent
        elif shape.types.get(parent, known_types.get(parent)) == MAP_TYPE:
            return parent
    return None
