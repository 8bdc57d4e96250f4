"""The object and the exports: the base class :class:`DurableObject`, and
``export_object``/``export_rpc``, which build the classes componentize-py
instantiates for the ``handler`` and RPC interface exports. They keep no state:
the one live instance is a global of this module, created by ``init``."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable, Dict, Optional, Sequence

from componentize_py_types import Err
from ._wit import types as _types

from .env import Env, _read_env
from .error import _error_message
from .http import Response, _request_from_wit
from .state import DurableObjectState
from .websocket import WebSocket, WebSocketError


class DurableObject:
    """Base class of an object class: ``self.ctx`` and ``self.env``.

    ``env`` is an :class:`Env`: the manifest's vars and secrets (``env.NAME``,
    ``env["NAME"]``, ``"NAME" in env``, iteration over the names).
    """

    def __init__(self, ctx: DurableObjectState, env: Env):
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
    """The class componentize-py needs for the ``handler`` export: ``Handler = export_object(MyClass)``.

    Each instance is built as ``cls(ctx, env)``: ``env`` (an :class:`Env`) holds
    the manifest's vars and secrets, read from the host in ``init``, plus the
    entries of the optional mapping ``env`` given here (a name in both raises).
    """
    from wit_world import exports as _exports

    def init(self) -> None:
        def run():
            global _instance
            _instance = None
            _instance = cls(DurableObjectState(), _read_env(env))

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


# Methods that are events, never RPC.
_NOT_RPC = {"fetch", "alarm", "web_socket_message", "web_socket_close", "web_socket_error"}


def _public_methods(cls: type) -> list:
    names = set()
    for klass in cls.__mro__:
        if klass is DurableObject or klass is object:
            continue
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_") and name not in _NOT_RPC:
                names.add(name)
    return sorted(names)


def export_dynamic(cls: type) -> type:
    """Untyped RPC (``dohost:object/dynamic``), as on Cloudflare: ``Dynamic = export_dynamic(MyClass)``.

    Every public method of the class (not ``fetch``, ``alarm``, ``web_socket_*``,
    nor a name starting with ``_``) is callable by other objects and entries
    (``env.COUNTER.get_by_name("a").increment(5)``) and over ``POST /rpc/…``,
    with JSON arguments and result. An exception reaches the caller with its
    class name and message, and the host rolls the event back. Build against
    world ``dynamic-object``.
    """
    import json as _json

    from wit_world import exports as _exports
    from wit_world.exports import dynamic as _dyn
    from wit_world.imports import namespaces as _ns

    methods = _public_methods(cls)

    def call(self, method: str, args_json: str) -> str:
        if method not in methods:
            known = ", ".join(methods) or "none"
            raise Err(_dyn.DynamicError_NotFound(f"{cls.__name__} has no public method {method!r}; its methods: {known}"))
        try:
            args = _json.loads(args_json)
            result = getattr(_live(), method)(*(args if isinstance(args, list) else [args]))
            return _json.dumps(result)
        except Exception as e:  # noqa: BLE001 — every exception goes to the caller
            traceback.print_exc(file=sys.stderr)
            thrown = _ns.ThrownError(name=type(e).__name__, message=str(e))
            raise Err(_dyn.DynamicError_Thrown(thrown)) from None

    return type("Dynamic", (_exports.Dynamic,), {"call": call})
