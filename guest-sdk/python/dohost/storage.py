"""Storage: ``ctx.storage`` (:class:`DurableObjectStorage`): KV (values as JSON),
the alarm, nested transactions and ``delete_all``, with ``ctx.storage.sql`` from
``sql.py``. Everything belongs to the current event's transaction."""

from __future__ import annotations

import json as _json
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from wit_world.imports import alarms as _alarms
from wit_world.imports import kv as _kv
from wit_world.imports import storage as _storage

from .error import _host
from .sql import SqlStorage
from .values import _I64_MAX, _I64_MIN


def _encode_value(key: str, value: Any) -> bytes:
    return _json.dumps(value, separators=(",", ":")).encode()


def _decode_value(key: str, data: bytes) -> Any:
    try:
        return _json.loads(data)
    except ValueError as e:
        raise ValueError(f"value of key {key!r} is not JSON: {e}") from None


class _Transaction:
    def __enter__(self):
        _host(_storage.begin_nested)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            _host(_storage.commit_nested)
        else:
            _host(_storage.rollback_nested)
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
        _host(_storage.delete_all)

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
