"""Outbound HTTP: :func:`fetch` sends a request to an outside service over
``wasi:http/outgoing-handler`` and returns the whole :class:`Response`.

The host lets it out only to the hosts of the class's ``allow`` list, and only
after the writes before it are durable (the output gate: the event is atomic
up to the send; see the README). A failure raises :class:`DohostError` with
wasi:http's reason (``HttpRequestDenied`` for a host the policy does not
allow). The class must target a world that imports wasi:http's client
(``-d guest-sdk/wit -w dohost:sdk/object-http`` or ``dynamic-object-http``);
otherwise :func:`fetch` raises ``DohostError`` of kind ``"unsupported"``."""

from __future__ import annotations

from typing import Optional, Union
from urllib.parse import urlsplit

from componentize_py_types import Err

from .error import DohostError
from .http import Headers, Response
from .values import _bytes

#: The largest response body :func:`fetch` reads (the host caps it at 16 MiB too).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_WRITE_CHUNK = 4096
_READ_CHUNK = 65536


# Imported at the top level, so at build time: componentize-py leaves out of
# the component the binding modules the snapshot did not load.
try:
    from wit_world.imports import outgoing_handler as _outgoing_handler
    from wit_world.imports import streams as _streams
    from wit_world.imports import wasi_http_types as _http

    _MISSING: Optional[ImportError] = None
except ImportError as missing:
    _MISSING = missing


def _require_http() -> None:
    if _MISSING is not None:
        raise DohostError(
            f"fetch needs wasi:http/outgoing-handler ({_MISSING}); build the class against a "
            "world that imports it (-d guest-sdk/wit -w dohost:sdk/object-http, "
            "or dohost:sdk/dynamic-object-http)",
            "unsupported",
        )


def _method(method: str):
    known = {
        "GET": _http.Method_Get, "HEAD": _http.Method_Head, "POST": _http.Method_Post,
        "PUT": _http.Method_Put, "DELETE": _http.Method_Delete, "PATCH": _http.Method_Patch,
        "OPTIONS": _http.Method_Options, "CONNECT": _http.Method_Connect, "TRACE": _http.Method_Trace,
    }
    m = known.get(method.upper())
    return m() if m else _http.Method_Other(method)


def _reason(e) -> str:
    value = getattr(e, "value", e)
    return type(value).__name__.split("_", 1)[-1] + (f" {value.value!r}" if getattr(value, "value", None) else "")


def fetch(url: str, *, method: str = "GET", headers=None, body: Union[None, str, bytes] = None) -> Response:
    """Sends ``method url`` (absolute: ``https://api.example.com/v1/x?y=1``)
    with ``headers`` and ``body``, and waits for the whole response."""
    _require_http()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DohostError(f"fetch needs an absolute http(s) URL, got {url!r}", "invalid")
    data = b"" if body is None else (body.encode() if isinstance(body, str) else _bytes(body))
    pairs = [(k, v.encode()) for k, v in Headers(headers).items()]
    if data and not any(k == "content-length" for k, _ in pairs):
        pairs.append(("content-length", str(len(data)).encode()))
    try:
        fields = _http.Fields.from_list(pairs)
    except Err as e:
        raise DohostError(f"fetch cannot send these headers: {_reason(e)}", "invalid") from None
    request = _http.OutgoingRequest(fields)
    try:
        request.set_method(_method(method))
        request.set_scheme(_http.Scheme_Https() if parts.scheme == "https" else _http.Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    except Err:
        raise DohostError(f"fetch got an invalid method or URL: {method} {url}", "invalid") from None
    _send_body(request.body(), data)
    try:
        pending = _outgoing_handler.handle(request, None)
    except Err as e:
        raise DohostError(f"fetch was refused: {_reason(e)}") from None
    with pending:
        response = _wait(pending)
    with response:
        status = response.status()
        with response.headers() as got:
            reply_headers = Headers((k, v.decode("utf-8", "replace")) for k, v in got.entries())
        reply = _read_body(response.consume())
    return Response(reply, status=status, headers=reply_headers)


def _send_body(outgoing, data: bytes) -> None:
    if data:
        with outgoing.write() as stream:
            for at in range(0, len(data), _WRITE_CHUNK):
                try:
                    stream.blocking_write_and_flush(data[at:at + _WRITE_CHUNK])
                except Err as e:
                    raise DohostError(f"fetch could not send its body: {_reason(e)}") from None
    try:
        _http.OutgoingBody.finish(outgoing, None)
    except Err as e:
        raise DohostError(f"fetch could not finish its body: {_reason(e)}") from None


def _wait(pending):
    while True:
        got = pending.get()
        if got is None:
            with pending.subscribe() as ready:
                ready.block()
            continue
        if isinstance(got, Err):
            raise DohostError("fetch failed: the response was taken")
        inner = got.value
        if isinstance(inner, Err):
            raise DohostError(f"fetch failed: {_reason(inner)}")
        return inner.value


def _read_body(incoming) -> bytes:
    out = bytearray()
    with incoming.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(_READ_CHUNK)
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                raise DohostError(f"fetch could not read the response: {_reason(e)}") from None
            if len(out) + len(chunk) > MAX_RESPONSE_BYTES:
                raise DohostError(f"fetch: the response body is larger than {MAX_RESPONSE_BYTES} bytes")
            out += chunk
    with _http.IncomingBody.finish(incoming):
        pass
    return bytes(out)
