"""Errors: :class:`DohostError`, what a failing host import raises (a ``kind``
to match on and the host's message), ``_host``, which calls an import and
converts its ``Err``, and ``_error_message`` for what a handler reports."""

from __future__ import annotations

from typing import Any, Callable

from componentize_py_types import Err
from wit_world.imports import namespaces as _ns
from ._wit import types as _types

# The case of each WIT error variant → its WIT name.
_KINDS = {
    _types.StorageError_Refused: "refused",
    _types.StorageError_Invalid: "invalid",
    _types.StorageError_Quota: "quota",
    _types.StorageError_Sql: "sql",
    _types.StorageError_Unsupported: "unsupported",
    _ns.CallError_Overloaded: "overloaded",
    _ns.CallError_Timeout: "timeout",
    _ns.CallError_Cycle: "cycle",
    _ns.CallError_UnknownClass: "unknown-class",
    _ns.CallError_NotFound: "not-found",
    _ns.CallError_Invalid: "invalid",
    _ns.CallError_Failed: "failed",
    _ns.CallError_Unsupported: "unsupported",
}


class DohostError(Exception):
    """An error reported by the host (an ``err`` of an import), or a misuse the
    SDK refuses before the host would (a disposed socket).

    ``kind`` is the case of the WIT error, with its WIT name:

    - storage (``storage-error``: SQL, KV, the alarm, transactions):
      ``"refused"``, ``"invalid"``, ``"quota"``, ``"sql"``, ``"unsupported"``;
    - calls to other objects (``call-error``: ``get_namespace``, stubs):
      ``"overloaded"``, ``"timeout"``, ``"cycle"``, ``"unknown-class"``,
      ``"not-found"``, ``"invalid"``, ``"failed"``, ``"unsupported"``;
    - ``"other"`` for errors without cases (WebSockets: a string to fix in the class).
    """

    def __init__(self, message: str = "", kind: str = "other"):
        super().__init__(message)
        self.kind: str = kind

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def unsupported(self) -> bool:
        """True when the host version does not implement the called function."""
        return self.kind == "unsupported"

    @property
    def overloaded(self) -> bool:
        """True when a called object is overloaded; retrying later may succeed."""
        return self.kind == "overloaded"


def _from_err(value: Any) -> DohostError:
    """An import's ``Err`` value (a variant case or a string) as a DohostError."""
    if isinstance(value, str):
        return DohostError(value, "unsupported" if value.startswith("unsupported:") else "other")
    kind = _KINDS.get(type(value))
    if kind is None:  # a case this SDK does not know: its class name, kebab-case
        name = type(value).__name__.rpartition("_")[2]
        kind = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    message = getattr(value, "value", None)
    if kind == "thrown" and message is not None:  # the callee's exception: name and message
        return DohostError(f"{message.name}: {message.message}", kind)
    return DohostError(message if isinstance(message, str) else kind, kind)


def _host(fn: Callable, *args):
    """Calls an import; its ``Err`` becomes a DohostError."""
    try:
        return fn(*args)
    except Err as e:
        raise _from_err(e.value) from None


def _error_message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"
