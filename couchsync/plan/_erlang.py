"""Reading the opaque sequences CouchDB 2.x and 3.x give (``update_seq``, ``purge_seq``,
``_changes``' ``last_seq``): base64url of Erlang's external term format, compressed
(``fabric_view_changes:pack_seqs``). Only the terms such a sequence holds are read:
lists, tuples, atoms, integers and binaries."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

_VERSION = 131
_COMPRESSED = 80


def decode_term(packed: str) -> Any:
    """The term ``packed`` (base64url, padding optional) holds: atoms as str, binaries
    as bytes, lists as list, tuples as tuple. Raises ValueError (or ``struct.error``,
    ``zlib.error``, IndexError) when it is not one."""
    raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
    if raw[0] != _VERSION:
        raise ValueError("not Erlang's external term format")
    data = zlib.decompress(raw[6:]) if raw[1] == _COMPRESSED else raw[1:]
    value, end = _term(data, 0)
    if end != len(data):
        raise ValueError("bytes after the term")
    return value


def _term(data: bytes, at: int) -> tuple[Any, int]:
    tag, at = data[at], at + 1
    if tag == 97:  # SMALL_INTEGER_EXT
        return data[at], at + 1
    if tag == 98:  # INTEGER_EXT
        return struct.unpack_from(">i", data, at)[0], at + 4
    if tag == 110:  # SMALL_BIG_EXT
        size, sign = data[at], data[at + 1]
        value = int.from_bytes(data[at + 2:at + 2 + size], "little")
        return (-value if sign else value), at + 2 + size
    if tag in (115, 119):  # SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT
        size = data[at]
        return data[at + 1:at + 1 + size].decode("utf-8"), at + 1 + size
    if tag in (100, 118):  # ATOM_EXT, ATOM_UTF8_EXT
        size = struct.unpack_from(">H", data, at)[0]
        return data[at + 2:at + 2 + size].decode("utf-8"), at + 2 + size
    if tag == 109:  # BINARY_EXT
        size = struct.unpack_from(">I", data, at)[0]
        return bytes(data[at + 4:at + 4 + size]), at + 4 + size
    if tag == 106:  # NIL_EXT
        return [], at
    if tag == 107:  # STRING_EXT: a list of bytes
        size = struct.unpack_from(">H", data, at)[0]
        return list(data[at + 2:at + 2 + size]), at + 2 + size
    if tag in (104, 105, 108):  # SMALL_TUPLE_EXT, LARGE_TUPLE_EXT, LIST_EXT
        if tag == 104:
            size, at = data[at], at + 1
        else:
            size, at = struct.unpack_from(">I", data, at)[0], at + 4
        items = []
        for _ in range(size):
            item, at = _term(data, at)
            items.append(item)
        if tag != 108:
            return tuple(items), at
        _tail, at = _term(data, at)  # a proper list ends with NIL
        return items, at
    raise ValueError(f"an Erlang term of tag {tag} is not read here")
