"""dohost guest SDK for Python (componentize-py 0.25).

A Durable-Objects-like API over the imports of the WIT world
``dohost:object/object``. A class module (the app module given to
``componentize-py componentize``) looks like::

    from dohost import DurableObject, Response, export_object, export_rpc

    class MyCounter(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS ...")

        def fetch(self, request):
            return Response("hello")

        def increment(self, by: int) -> int: ...

    Handler = export_object(MyCounter)                     # dohost:object/handler
    Counter = export_rpc(MyCounter, ["increment", "get"])  # dohost:examples/counter

componentize-py finds the exports by class name in the app module: the
``handler`` interface needs a class ``Handler``; an RPC interface ``counter``
needs a class ``Counter``. It instantiates those classes itself (some instances
are made at build time), so they keep no state: the object lives in a module
global here, created by the ``init`` export.

Errors:

- an import that returns ``err(string)`` raises :class:`DohostError`
  (``unsupported`` is true when the host does not implement it yet);
- an exception that escapes ``fetch`` or an RPC method TRAPS the instance: the
  host rolls the event back, answers 500 and builds a fresh instance;
- an exception that escapes ``__init__``, ``alarm`` or a ``web_socket_*``
  handler becomes the handler's ``err(string)`` (alarm: writes committed, retried);
- ``ctx.abort(reason)`` traps from anywhere.

Values handed to the bindings are checked here: componentize-py traps (it
does not raise) on an int out of the WIT type's range or on ``str``/``bytearray``
where ``list<u8>`` (``bytes``) is expected.
"""

from __future__ import annotations

import json as _json
import sys
import traceback
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

from componentize_py_types import Err
from wit_world.imports import alarms as _alarms
from wit_world.imports import kv as _kv
from wit_world.imports import namespaces as _ns
from wit_world.imports import sql as _sql
from wit_world.imports import state as _state
from wit_world.imports import types as _types
from wit_world.imports import websockets as _ws

__all__ = [
    "DohostError",
    "DurableObject",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStorage",
    "Headers",
    "Request",
    "Response",
    "SqlCursor",
    "SqlStorage",
    "WebSocket",
    "WebSocketError",
    "WebSocketRequestResponsePair",
    "export_object",
    "export_rpc",
    "get_namespace",
]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


# ---------------------------------------------------------------------------
# Errors


class DohostError(Exception):
    """An error reported by the host (an ``err(string)`` of an import)."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def unsupported(self) -> bool:
        """True when the host version does not implement the called function."""
        return self.message.startswith("unsupported:")


def _host(fn: Callable, *args):
    """Calls an import; its ``Err(string)`` becomes a DohostError."""
    try:
        return fn(*args)
    except Err as e:
        raise DohostError(e.value) from None


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


def _error_message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------
# SQL


def _to_sql(v: Any) -> _types.SqlValue:
    if v is None:
        return _types.SqlValue_Null()
    if isinstance(v, bool):
        return _types.SqlValue_Integer(int(v))
    if isinstance(v, int):
        if not _I64_MIN <= v <= _I64_MAX:
            raise OverflowError(f"SQL integer parameter out of the 64-bit range: {v}")
        return _types.SqlValue_Integer(v)
    if isinstance(v, float):
        return _types.SqlValue_Real(v)
    if isinstance(v, str):
        return _types.SqlValue_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _types.SqlValue_Blob(bytes(v))
    raise TypeError(f"cannot bind a {type(v).__name__} as an SQL parameter")


def _from_sql(v: _types.SqlValue) -> Any:
    if isinstance(v, _types.SqlValue_Null):
        return None
    return v.value  # int, float, str or bytes


class SqlCursor:
    """The result of ``sql.exec``: all rows of the last statement (fetched eagerly).

    Iterating yields rows as dicts keyed by column name.
    """

    def __init__(self, cursor: _sql.Cursor):
        self._columns = list(cursor.columns)
        self._rows = cursor.rows
        self._pos = 0
        self.rows_read: int = cursor.rows_read
        self.rows_written: int = cursor.rows_written

    @property
    def column_names(self) -> List[str]:
        return list(self._columns)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        if self._pos >= len(self._rows):
            raise StopIteration
        row = self._rows[self._pos]
        self._pos += 1
        return {c: _from_sql(v) for c, v in zip(self._columns, row)}

    def to_array(self) -> List[Dict[str, Any]]:
        """The remaining rows as dicts."""
        return list(self)

    def one(self) -> Dict[str, Any]:
        """The only row; raises unless there is exactly one."""
        rows = self.to_array()
        if len(rows) != 1:
            raise ValueError(f"expected exactly one row, got {len(rows)}")
        return rows[0]

    def raw(self) -> List[List[Any]]:
        """The remaining rows as lists of values (column order)."""
        rows = [[_from_sql(v) for v in r] for r in self._rows[self._pos :]]
        self._pos = len(self._rows)
        return rows

    def scalar(self) -> Any:
        """The first column of the only row."""
        rows = self.raw()
        if len(rows) != 1 or not rows[0]:
            raise ValueError(f"expected exactly one row with a column, got {len(rows)} rows")
        return rows[0][0]


class SqlStorage:
    """``ctx.storage.sql``."""

    def exec(self, query: str, *params: Any) -> SqlCursor:
        """Runs one or more ``;``-separated statements; ``?`` parameters bind in order."""
        return SqlCursor(_host(_sql.exec, query, [_to_sql(p) for p in params]))

    @property
    def database_size(self) -> int:
        """Bytes used by the database."""
        return _host(_sql.database_size)


# ---------------------------------------------------------------------------
# KV storage, alarms, transactions


def _encode_value(key: str, value: Any) -> bytes:
    return _json.dumps(value, separators=(",", ":")).encode()


def _decode_value(key: str, data: bytes) -> Any:
    try:
        return _json.loads(data)
    except ValueError as e:
        raise ValueError(f"value of key {key!r} is not JSON: {e}") from None


class _Transaction:
    def __enter__(self):
        _host(_sql.begin_nested)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            _host(_sql.commit_nested)
        else:
            _host(_sql.rollback_nested)
        return False


class DurableObjectStorage:
    """``ctx.storage``: KV (values JSON-encoded), SQL, the alarm and transactions.

    Everything belongs to the current event's transaction.
    """

    def __init__(self):
        self.sql = SqlStorage()

    # KV -------------------------------------------------------------------
    def get(self, keys: Union[str, Sequence[str]]) -> Any:
        """``get(key)`` → value or None; ``get([keys])`` → dict of the keys that exist (key order)."""
        if isinstance(keys, str):
            data = _host(_kv.get, keys)
            return None if data is None else _decode_value(keys, data)
        return {k: _decode_value(k, v) for k, v in _host(_kv.get_many, list(keys))}

    def put(self, key_or_entries: Union[str, Mapping[str, Any]], value: Any = None) -> None:
        """``put(key, value)`` or ``put({key: value, ...})``."""
        if isinstance(key_or_entries, str):
            _host(_kv.put, key_or_entries, _encode_value(key_or_entries, value))
        else:
            entries = [(k, _encode_value(k, v)) for k, v in dict(key_or_entries).items()]
            _host(_kv.put_many, entries)

    def delete(self, keys: Union[str, Sequence[str]]) -> Union[bool, int]:
        """``delete(key)`` → whether it existed; ``delete([keys])`` → how many existed."""
        if isinstance(keys, str):
            return _host(_kv.delete, keys)
        return _host(_kv.delete_many, list(keys))

    def list(
        self,
        *,
        prefix: Optional[str] = None,
        start: Optional[str] = None,
        start_after: Optional[str] = None,
        end: Optional[str] = None,
        reverse: bool = False,
        limit: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Entries in key order (a dict keeps it)."""
        if start_after is not None:
            after = start_after + "\0"  # the smallest key greater than start_after
            start = after if start is None or after > start else start
        if limit is not None and not 0 <= limit <= 0xFFFFFFFF:
            raise ValueError(f"limit must be in 0..2^32-1, got {limit}")
        opts = _kv.ListOptions(prefix=prefix, start=start, end=end, reverse=bool(reverse), limit=limit)
        return {k: _decode_value(k, v) for k, v in _host(_kv.list, opts)}

    def delete_all(self) -> None:
        """Deletes every SQL table, every key and the alarm."""
        _host(_kv.delete_all)

    # Alarm ------------------------------------------------------------------
    def get_alarm(self) -> Optional[int]:
        """The alarm time in epoch milliseconds, or None."""
        return _host(_alarms.get_alarm)

    def set_alarm(self, epoch_ms: Union[int, float, "datetime"]) -> None:  # noqa: F821
        """Sets the alarm: epoch milliseconds or a ``datetime``."""
        if hasattr(epoch_ms, "timestamp"):
            epoch_ms = epoch_ms.timestamp() * 1000
        ms = int(epoch_ms)
        if not _I64_MIN <= ms <= _I64_MAX:
            raise OverflowError(f"alarm time out of range: {ms}")
        _host(_alarms.set_alarm, ms)

    def delete_alarm(self) -> None:
        _host(_alarms.delete_alarm)

    # Transactions -----------------------------------------------------------
    def transaction_sync(self, fn: Callable[[], Any]) -> Any:
        """Runs ``fn`` in a nested transaction: an exception rolls back its writes and propagates."""
        with _Transaction():
            return fn()

    def transaction(self) -> _Transaction:
        """``with ctx.storage.transaction(): ...`` — the same as a context manager."""
        return _Transaction()


# ---------------------------------------------------------------------------
# WebSockets
#
# Handle lifetimes: every ``web-socket`` handle the host gives the guest stays
# allocated in the host until the guest drops it (the host traps a guest that
# holds more than 100,000). componentize-py drops a handle when its Python
# object is freed (``weakref.finalize``), and CPython frees the wrappers of a
# ``get_web_sockets()`` list or of an event argument as soon as they are no
# longer referenced: keep WebSocket objects only as long as you need them (or
# use ``with ws:`` / ``ws.dispose()`` to drop a handle at once).


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
        """Closes the socket when the event commits: code 1000 or 3000-4999, reason ≤ 123 bytes."""
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


# ---------------------------------------------------------------------------
# Identity, state, namespaces


class DurableObjectId:
    """The object's id: ``str(id)`` is 64 lowercase hex characters."""

    def __init__(self, hex_id: str, name: Optional[str] = None):
        self._hex = hex_id
        self.name = name

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return str(other) == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


class _Stub:
    """A stub to another object served by the same host (``namespaces``)."""

    def __init__(self, class_name: str, id: DurableObjectId):
        self._class = class_name
        self.id = id

    def call(self, method: str, *args: Any) -> Any:
        """Calls an RPC method with JSON-encodable arguments."""
        return _json.loads(_host(_ns.call, self._class, str(self.id), method, _json.dumps(list(args))))

    def fetch(self, url: str, method: str = "GET", headers=None, body: Union[str, bytes] = b"") -> "Response":
        req = _types.Request(method=method, url=url, headers=list(Headers(headers).items()), body=_bytes(body))
        res = _host(_ns.fetch, self._class, str(self.id), req)
        return Response(res.body, status=res.status, headers=res.headers)


class DurableObjectNamespace:
    """``get_namespace("Counter")``: ids of and stubs to the objects of a class."""

    def __init__(self, class_name: str):
        self._class = class_name

    def id_from_name(self, name: str) -> DurableObjectId:
        return DurableObjectId(_host(_ns.id_from_name, self._class, name), name)

    def new_unique_id(self) -> DurableObjectId:
        return DurableObjectId(_host(_ns.new_unique_id, self._class))

    def id_from_string(self, hex_id: str) -> DurableObjectId:
        return DurableObjectId(_host(_ns.id_from_string, self._class, hex_id))

    def get(self, id: DurableObjectId) -> _Stub:
        return _Stub(self._class, id)

    def get_by_name(self, name: str) -> _Stub:
        return self.get(self.id_from_name(name))


def get_namespace(class_name: str) -> DurableObjectNamespace:
    return DurableObjectNamespace(class_name)


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


# ---------------------------------------------------------------------------
# HTTP


class Headers:
    """Ordered, case-insensitive HTTP headers (names are kept lowercase)."""

    def __init__(self, init: Union[None, "Headers", Mapping[str, str], Iterable[Tuple[str, str]]] = None):
        self._items: List[Tuple[str, str]] = []
        if init is None:
            return
        items = init.items() if isinstance(init, (Headers, Mapping)) else init
        for name, value in items:
            self.append(name, value)

    def append(self, name: str, value: str) -> None:
        self._items.append((name.lower(), str(value)))

    def set(self, name: str, value: str) -> None:
        self.delete(name)
        self.append(name, value)

    def delete(self, name: str) -> None:
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k != n]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """All values of ``name`` joined with ", " (like the Fetch API), or default."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> List[str]:
        n = name.lower()
        return [v for k, v in self._items if k == n]

    def has(self, name: str) -> bool:
        return bool(self.get_all(name))

    def items(self) -> List[Tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return self.has(name)

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __iter__(self):
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """The request given to ``fetch``.

    ``url`` is the path and query relative to the object (``/increment?by=2``);
    ``path`` and ``query`` (first value of each name) are parsed from it.
    """

    def __init__(self, method: str, url: str, headers: Headers, body: bytes):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        parts = urlsplit(url)
        self.path: str = parts.path or "/"
        self.query_string: str = parts.query
        self.query: Dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(k, v)

    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return _json.loads(self.body)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url})"


class Response:
    """An HTTP response: ``Response(body, status=200, headers=None)``.

    Also accepts the Fetch-style ``Response(body, {"status": 400, "headers": {...}})``.
    ``body`` is str (UTF-8, ``text/plain; charset=utf-8`` unless set), bytes or None.
    """

    def __init__(self, body: Union[None, str, bytes, bytearray, memoryview] = None, init: Optional[Mapping[str, Any]] = None, *, status: Optional[int] = None, headers=None):
        init = dict(init or {})
        self.status: int = status if status is not None else init.get("status", 200)
        self.headers = Headers(headers if headers is not None else init.get("headers"))
        if body is None:
            self.body = b""
        elif isinstance(body, str):
            self.body = body.encode()
            if not self.headers.has("content-type"):
                self.headers.set("content-type", "text/plain; charset=utf-8")
        else:
            self.body = _bytes(body)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers=None) -> "Response":
        res = cls(_json.dumps(value), status=status, headers=headers)
        res.headers.set("content-type", "application/json")
        return res

    def text(self) -> str:
        return self.body.decode()

    def _to_wit(self) -> _types.Response:
        return _types.Response(
            status=_u16(self.status, "HTTP status"),
            headers=[(k, v) for k, v in self.headers.items() if k not in ("content-length", "transfer-encoding")],
            body=self.body,
        )


def _request_from_wit(req: _types.Request) -> Request:
    return Request(req.method, req.url, Headers(req.headers), req.body)


# ---------------------------------------------------------------------------
# The base class and the exports


class DurableObject:
    """Base class of an object class: ``self.ctx`` and ``self.env``."""

    def __init__(self, ctx: DurableObjectState, env: Any):
        self.ctx = ctx
        self.env = env


_instance: Optional[DurableObject] = None


def _live() -> DurableObject:
    if _instance is None:
        raise RuntimeError("dohost: event delivered before init")
    return _instance


def _as_result(f: Callable[[], Any]) -> None:
    """For handlers whose WIT result is ``result<_, string>``: an exception becomes ``err``."""
    try:
        f()
    except Err:
        raise
    except Exception as e:  # noqa: BLE001 — every error becomes the handler's err
        traceback.print_exc(file=sys.stderr)
        raise Err(_error_message(e)) from None
    return None


def export_object(cls: type, env: Any = None) -> type:
    """The class componentize-py needs for the ``handler`` export: ``Handler = export_object(MyClass)``."""
    from wit_world import exports as _exports

    def init(self) -> None:
        def run():
            global _instance
            _instance = None
            _instance = cls(DurableObjectState(), {} if env is None else env)

        _as_result(run)

    # No try/except: an exception here traps, so the host rolls the event back.
    def fetch(self, req: _types.Request) -> _types.Response:
        obj = _live()
        handler = getattr(obj, "fetch", None)
        if handler is None:
            return Response("no fetch handler", status=501)._to_wit()
        res = handler(_request_from_wit(req))
        if isinstance(res, str):
            res = Response(res)
        if not isinstance(res, Response):
            raise TypeError(f"fetch must return a dohost.Response, got {type(res).__name__}")
        return res._to_wit()

    def alarm(self, info: _types.AlarmInfo) -> None:
        def run():
            h = getattr(_live(), "alarm", None)
            if h is not None:
                h(info)  # info.retry_count, info.is_retry

        _as_result(run)

    def web_socket_message(self, ws, message) -> None:
        def run():
            h = getattr(_live(), "web_socket_message", None)
            if h is not None:
                h(WebSocket(ws), message.value)  # str (text frame) or bytes (binary frame)

        _as_result(run)

    def web_socket_close(self, ws, code, reason, was_clean) -> None:
        def run():
            h = getattr(_live(), "web_socket_close", None)
            if h is not None:
                h(WebSocket(ws), code, reason, was_clean)

        _as_result(run)

    def web_socket_error(self, ws, error) -> None:
        def run():
            h = getattr(_live(), "web_socket_error", None)
            if h is not None:
                h(WebSocket(ws), WebSocketError(error))

        _as_result(run)

    return type(
        "Handler",
        (_exports.Handler,),
        {
            "init": init,
            "fetch": fetch,
            "alarm": alarm,
            "web_socket_message": web_socket_message,
            "web_socket_close": web_socket_close,
            "web_socket_error": web_socket_error,
        },
    )


def export_rpc(cls: type, methods: Sequence[str], base: Optional[type] = None) -> type:
    """A class for an RPC interface export whose functions call the live instance.

    Bind it in the app module under the interface's name in UpperCamelCase::

        Counter = export_rpc(PyCounter, ["increment", "get"])

    (``base``, e.g. ``wit_world.exports.Counter``, is optional.) Arguments arrive
    as mapped by componentize-py (s64 → int, …); the method's return value must fit
    the WIT type — an int out of range traps. An exception traps (rolls the call
    back) unless the WIT function returns a result (raise ``Err(value)`` for its err).
    """
    attrs: Dict[str, Any] = {}
    for name in methods:
        if not callable(getattr(cls, name, None)):
            raise TypeError(f"{cls.__name__} has no method {name}")

        def make(name: str):
            def call(self, *args):
                return getattr(_live(), name)(*args)

            call.__name__ = name
            return call

        attrs[name] = make(name)
    return type(f"{cls.__name__}Rpc", (base,) if base else (), attrs)
