"""`PyCounter`: the Counter example in Python (same contract as examples/counter).

- ``GET  /obj/PyCounter/<name>/``                     → current value as text (``0`` when new)
- ``POST /obj/PyCounter/<name>/increment[?by=N]``     → new value as text (N defaults to 1;
                                                        not an integer → 400)
- ``POST /obj/PyCounter/<name>/increment-then-fail``  → writes the increment, then raises:
  the exception traps, the client gets 500 and the stored value is unchanged.
- RPC (``dohost:examples/counter``): ``increment(by: s64) -> s64``, ``get() -> s64``.

Built against world ``dohost:examples/counter-class-dynamic`` (examples/wit).
"""

import json
import re

from dohost import DurableObject, Response, export_dynamic, export_object, export_rpc

_INTEGER = re.compile(r"[+-]?[0-9]+")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class PyCounter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        self.sql.exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")

    def value(self) -> int:
        rows = self.sql.exec("SELECT value FROM counter WHERE id = 1").raw()
        return rows[0][0] if rows else 0

    def add(self, by: int) -> int:
        """Adds ``by`` and returns the new value.

        SQLite turns an overflowing integer sum into a REAL: that raises instead
        (from fetch or RPC, the exception traps and the write is rolled back).
        """
        value = self.sql.exec(
            """INSERT INTO counter (id, value) VALUES (1, ?1)
               ON CONFLICT (id) DO UPDATE SET value = value + ?1
               RETURNING value""",
            by,
        ).scalar()
        if not isinstance(value, int):
            raise OverflowError(f"counter overflow: adding {by} leaves the 64-bit range")
        return value

    def fetch(self, request):
        path, method = request.path, request.method
        if path == "/" and method == "GET":
            return Response(str(self.value()))
        if path == "/increment" and method == "POST":
            raw = request.query.get("by")
            by = 1
            if raw is not None:
                if not _INTEGER.fullmatch(raw) or not _I64_MIN <= int(raw) <= _I64_MAX:
                    return Response(f"?by must be an integer, got {json.dumps(raw)}", status=400)
                by = int(raw)
            return Response(str(self.add(by)))
        if path == "/increment-then-fail" and method == "POST":
            value = self.add(1)
            # Escapes fetch → the component traps → the host rolls the event back.
            raise RuntimeError(f"increment-then-fail: wrote {value}, now failing on purpose")
        if path in ("/", "/increment", "/increment-then-fail"):
            return Response("method not allowed", status=405)
        return Response(f"no route {path}", status=404)

    # RPC methods of dohost:examples/counter (s64 ↔ int).
    def increment(self, by: int) -> int:
        return self.add(by)

    def get(self) -> int:
        return self.value()


# componentize-py binds the exports by class name: `Handler` for
# dohost:object/handler, `Counter` for dohost:examples/counter.
Handler = export_object(PyCounter)
Counter = export_rpc(PyCounter, ["increment", "get"])
# Every other public method (``add``, ``value``) is untyped RPC.
Dynamic = export_dynamic(PyCounter)
