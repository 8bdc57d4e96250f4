"""Values handed to the bindings, checked first: componentize-py traps (it does
not raise) on an int out of the WIT type's range or on ``str``/``bytearray``
where ``list<u8>`` (``bytes``) is expected. Imports nothing of the host."""

from __future__ import annotations

from typing import Any

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def _bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode()
    raise TypeError(f"expected str, bytes, bytearray or memoryview, got {type(v).__name__}")


def _u16(v: int, what: str) -> int:
    if not isinstance(v, int) or not 0 <= v <= 0xFFFF:
        raise ValueError(f"{what} must be an integer in 0..65535, got {v!r}")
    return v
