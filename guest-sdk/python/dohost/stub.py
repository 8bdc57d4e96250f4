"""Other objects: ``get_namespace(class_name)`` (:class:`DurableObjectNamespace`),
their ids (:class:`DurableObjectId`, also ``ctx.id``) and stubs (``call`` an RPC
method, ``fetch``), over the ``namespaces`` import. A failed call raises a
DohostError whose ``kind`` is the ``call-error`` case (``"overloaded"``,
``"not-found"``, ``"unknown-class"``, …)."""

from __future__ import annotations

import json as _json
from typing import Any, Optional, Union

from wit_world.imports import namespaces as _ns
from ._wit import types as _types

from .error import _host
from .http import Headers, Response
from .values import _bytes


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
    """A stub to another object served by the same host (``namespaces``).

    ``stub.increment(5)`` calls the object's RPC method ``increment`` (a typed
    WIT method, or a public method of a JavaScript or Python class): any
    attribute that is not the stub's own is a method.
    """

    def __init__(self, class_name: str, id: DurableObjectId):
        self._class = class_name
        self.id = id

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args: self.call(method, *args)

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
