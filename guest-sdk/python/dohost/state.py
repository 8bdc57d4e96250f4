"""``ctx`` (:class:`DurableObjectState`): the object's identity, its storage, the
WebSockets it accepts and lists, and ``abort``. ``runtime.py`` creates one per
instance."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from wit_world.imports import state as _state
from wit_world.imports import websockets as _ws

from .error import _host
from .storage import DurableObjectStorage
from .stub import DurableObjectId
from .websocket import WebSocket, WebSocketRequestResponsePair


class DurableObjectState:
    """``ctx``: the object's identity, storage and WebSockets."""

    def __init__(self):
        self.id = DurableObjectId(_state.id(), _state.name())
        #: The class name as configured in the manifest.
        self.class_name: str = _state.class_name()
        self.storage = DurableObjectStorage()

    def accept_web_socket(self, tags: Sequence[str] = ()) -> WebSocket:
        """Accepts the WebSocket upgrade of the current request; then return ``Response(None, status=101)``.

        At most 10 tags of ≤ 256 chars. Raises DohostError when the request does not
        ask for an upgrade, on a second accept, or above limits.max_sockets_per_object.
        """
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise TypeError("accept_web_socket: tags must be a sequence of str")
        return WebSocket(_host(_ws.accept, list(tags)))

    def get_web_sockets(self, tag: Optional[str] = None) -> List[WebSocket]:
        """The open sockets of this object (those with ``tag``, if given), oldest first."""
        if tag is not None and not isinstance(tag, str):
            raise TypeError("get_web_sockets: tag must be a str")
        return [WebSocket(r) for r in _host(_ws.get_web_sockets, tag)]

    def get_tags(self, ws: WebSocket) -> List[str]:
        """The tags of a socket (``ws.tags``)."""
        return ws.tags

    def set_web_socket_auto_response(self, pair: Optional[Union[WebSocketRequestResponsePair, Tuple[str, str]]] = None) -> None:
        """Sets the pair the host answers by itself without waking the object; None clears it.

        ``WebSocketRequestResponsePair("ping", "pong")`` or a ``(request, response)`` tuple.
        """
        if pair is None:
            _host(_ws.set_auto_response, None)
            return
        request, response = pair
        if not isinstance(request, str) or not isinstance(response, str):
            raise TypeError("set_web_socket_auto_response expects two strings (request, response)")
        _host(_ws.set_auto_response, _ws.AutoResponse(request=request, response=response))

    def get_web_socket_auto_response(self) -> Optional[WebSocketRequestResponsePair]:
        """The current auto-response pair, or None."""
        p = _ws.get_auto_response()
        return None if p is None else WebSocketRequestResponsePair(p.request, p.response)

    def get_web_socket_auto_response_timestamp(self, ws: WebSocket) -> Optional["datetime"]:  # noqa: F821
        """When the host last auto-responded to ``ws`` (an aware UTC datetime), or None."""
        from datetime import datetime, timezone

        t = ws.auto_response_timestamp
        return None if t is None else datetime.fromtimestamp(t / 1000, tz=timezone.utc)

    def abort(self, reason: str = "aborted") -> None:
        """Rolls back the current event and resets the object (a trap). Never returns."""
        _state.abort(str(reason))
        raise RuntimeError("unreachable: abort returned")
