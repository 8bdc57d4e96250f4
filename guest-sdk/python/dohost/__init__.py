"""dohost guest SDK for Python (componentize-py 0.25).

A Durable-Objects-like API over the imports of the WIT world
``dohost:object/object@0.2.0``. A class module (the app module given to
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
global of ``dohost.runtime``, created by the ``init`` export.

Errors:

- an import that fails raises :class:`DohostError`: ``message`` is the host's
  message, ``kind`` the case of the WIT error variant with its WIT name
  (``"refused"``, ``"invalid"``, ``"quota"``, ``"sql"`` for storage;
  ``"overloaded"``, ``"timeout"``, ``"cycle"``, ``"unknown-class"``,
  ``"not-found"``, ``"invalid"``, ``"failed"`` for calls to other objects;
  ``"unsupported"`` when the host does not implement the function; ``"other"``
  for WebSocket errors, which are plain strings); ``unsupported`` and
  ``overloaded`` are shorthands for two kinds;
- a storage failure the object cannot go on after (the database itself, the
  event's deadline) is not an error but a trap: the host rolls the event back;
- an exception that escapes ``fetch`` or an RPC method TRAPS the instance: the
  host rolls the event back, answers 500 and builds a fresh instance;
- an exception that escapes ``__init__``, ``alarm`` or a ``web_socket_*``
  handler becomes the handler's ``err(string)`` (alarm: writes committed, retried);
- ``ctx.abort(reason)`` traps from anywhere.

Values handed to the bindings are checked first (``values.py``): componentize-py
traps (it does not raise) on an int out of the WIT type's range or on
``str``/``bytearray`` where ``list<u8>`` (``bytes``) is expected.

This module only re-exports; the package's modules mirror guest-sdk/src/ of the
Rust SDK:

- ``error``: :class:`DohostError` (``kind``, ``message``); an import's ``Err`` → DohostError
- ``sql``: ``ctx.storage.sql``: :class:`SqlStorage`, :class:`SqlCursor`
- ``storage``: ``ctx.storage``: :class:`DurableObjectStorage` (KV, alarm, transactions)
- ``websocket``: :class:`WebSocket`, :class:`WebSocketError`, :class:`WebSocketRequestResponsePair`
- ``stub``: :func:`get_namespace`, :class:`DurableObjectNamespace`, :class:`DurableObjectId`, stubs
- ``state``: ``ctx``: :class:`DurableObjectState`
- ``http``: :class:`Request`, :class:`Response`, :class:`Headers`
- ``runtime``: :class:`DurableObject`, :func:`export_object`, :func:`export_rpc`
- ``env``: :class:`Env`, the ``env`` of the constructor: the manifest's vars and secrets
- ``values``: range and type checks of values handed to the bindings

No module calls a host import at its top level (it runs at build time).
"""

from .env import Env
from .error import DohostError
from .http import Headers, Request, Response
from .outbound import fetch
from .runtime import DurableObject, export_dynamic, export_object, export_rpc
from .sql import SqlCursor, SqlStorage
from .state import DurableObjectState
from .storage import DurableObjectStorage
from .stub import DurableObjectId, DurableObjectNamespace, get_namespace
from .websocket import WebSocket, WebSocketError, WebSocketRequestResponsePair

__all__ = [
    "DohostError",
    "DurableObject",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStorage",
    "Env",
    "export_dynamic",
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
    "fetch",
    "get_namespace",
]
