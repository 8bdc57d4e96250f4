"""WebSockets: the host-owned :class:`WebSocket` (the WIT resource ``web-socket``),
:class:`WebSocketRequestResponsePair` and :class:`WebSocketError`. Sockets are
accepted and listed by ``DurableObjectState`` (``state.py``).

Handle lifetimes: every ``web-socket`` handle the host gives the guest stays
allocated in the host until the guest drops it (the host traps a guest that
holds more than 100,000). componentize-py drops a handle when its Python
object is freed (``weakref.finalize``), and CPython frees the wrappers of a
``get_web_sockets()`` list or of an event argument as soon as they are no
longer referenced: keep WebSocket objects only as long as you need them (or
use ``with ws:`` / ``ws.dispose()`` to drop a handle at once).
"""

from __future__ import annotations

import json as _json
from typing import Any, List, NamedTuple, Optional, Union

from ._wit import types as _types
from wit_world.imports import websockets as _ws

from .error import DohostError, _host
from .values import _u16


class WebSocketError(Exception):
    """The error given to ``web_socket_error`` (a protocol error or an oversized message)."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class WebSocketRequestResponsePair(NamedTuple):
    """The auto-response pair: ``ctx.set_web_socket_auto_response(WebSocketRequestResponsePair("ping", "pong"))``."""

    request: str
    response: str


class WebSocket:
    """A host-owned WebSocket (the WIT resource ``web-socket``).

    Two objects for the same socket (from different calls or events) are equal
    and hash alike (by ``id``). ``send`` and ``close`` take effect when the
    current event commits.
    """

    __slots__ = ("_res", "_id")

    def __init__(self, resource: _ws.WebSocket):
        self._res = resource
        self._id: Optional[str] = None

    def _live(self) -> _ws.WebSocket:
        if self._res is None:
            raise DohostError(f"socket {self._id} was disposed")
        return self._res

    @property
    def id(self) -> str:
        """Stable id of the socket within the object."""
        if self._id is None:
            self._id = self._live().id()
        return self._id

    @property
    def tags(self) -> List[str]:
        """The tags given to ``accept_web_socket``."""
        return list(self._live().tags())

    def send(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """Queues a message (str → text frame, bytes-like → binary); sent when the event commits.

        Raises DohostError on a closed socket or above limits.max_ws_message_bytes.
        """
        if isinstance(message, str):
            m = _types.WsMessage_Text(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            m = _types.WsMessage_Binary(bytes(message))
        else:
            raise TypeError(f"WebSocket.send expects str or bytes, got {type(message).__name__}")
        _host(self._live().send, m)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the socket when the event commits: code 1000-4999 but the reserved 1004-1006 and 1015, reason ≤ 123 bytes."""
        _host(self._live().close, _u16(code, "close code"), str(reason))

    def serialize_attachment(self, value: Any) -> None:
        """Stores a JSON value (≤ 2,048 bytes encoded) with the socket; it survives hibernation."""
        data = _json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        _host(self._live().serialize_attachment, data)

    def deserialize_attachment(self) -> Any:
        """The value stored by ``serialize_attachment``, or None."""
        data = self._live().deserialize_attachment()
        return None if data is None else _json.loads(data)

    @property
    def auto_response_timestamp(self) -> Optional[int]:
        """Epoch ms when the host last answered this socket with the auto-response, or None."""
        return self._live().auto_response_timestamp()

    def dispose(self) -> None:
        """Drops the handle now (the socket stays open; get it again from ``get_web_sockets``)."""
        if self._res is not None:
            if self._id is None:
                self._id = self._res.id()
            res, self._res = self._res, None
            res.__exit__(None, None, None)

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebSocket) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"WebSocket(id={self._id!r})"
