"""SQL: ``ctx.storage.sql`` (:class:`SqlStorage`) and the cursor ``exec`` returns
(:class:`SqlCursor`), with the mapping between Python values and WIT ``sql-value``."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

from wit_world.imports import sql as _sql
from wit_world.imports import storage as _storage
from ._wit import types as _types

from .error import _host
from .values import _I64_MAX, _I64_MIN


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
        return _host(_storage.database_size)
