"""HTTP: :class:`Request`, :class:`Response` and :class:`Headers`, and the
conversions between them and the WIT ``request``/``response`` of the ``fetch``
handler. Imports nothing of the host but its types."""

from __future__ import annotations

import json as _json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

from ._wit import types as _types

from .values import _bytes, _u16


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
