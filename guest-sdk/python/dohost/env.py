"""``env``: the manifest's ``[vars]`` and ``[secrets]`` (import ``dohost:object/env``).

``runtime.py`` builds a fresh :class:`Env` for every instance, inside ``init``
(no host call is possible at a module's top level: it runs at build time), and
passes it to the class as ``__init__(self, ctx, env)`` (``self.env``).

Secrets are ordinary ``str`` values here: the host never logs them, but whatever
the class prints (a value, a traceback with one in it) reaches the host's log as
the guest's output. ``repr(env)`` shows the names only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator, List, Optional

from wit_world.imports import env as _env


class Env(Mapping):
    """The vars and secrets: ``env.NAME``, ``env["NAME"]``, ``"NAME" in env``, ``list(env)``.

    A read-only mapping of name → value (``str`` for every var and secret);
    iteration yields the names, sorted as the host lists them. A missing name
    raises ``AttributeError`` (attribute access) or ``KeyError`` (``env[name]``);
    ``env.get(name, default)`` returns the default. Attribute access cannot reach
    a name that is also a method of the mapping (``get``, ``keys``, ``items``,
    ``values``): use ``env["keys"]`` for those.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Optional[Mapping] = None):
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails (methods and slots come first).
        if name == "_values" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        values = self._values
        if name in values:
            return values[name]
        known = ", ".join(values) or "none"
        raise AttributeError(f"env has no var or secret {name!r} (the manifest defines: {known})")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("env is read-only")

    def __reduce__(self):
        return (type(self), (self._values,))

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | {n for n in self._values if n.isidentifier()})

    def __repr__(self) -> str:
        # Names only: a value may be a secret.
        return f"Env({list(self._values)!r})"


def _read_env(extra: Optional[Mapping] = None) -> Env:
    """The ``env`` of a new instance: the manifest's vars and secrets, then ``extra``."""
    values = {}
    for name in _env.names():
        value = _env.get(name)
        if value is not None:
            values[name] = value
    # ``[bindings]``: ``env.COUNTER`` is the namespace of the bound class.
    from .stub import get_namespace

    for name, class_name in _env.bindings():
        # The ``[assets]`` binding ('@assets') is the JavaScript SDK's only.
        if class_name != "@assets":
            values[name] = get_namespace(class_name)
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TypeError(f"export_object: env must be a mapping, got {type(extra).__name__}")
        for name, value in extra.items():
            if name in values:
                raise ValueError(f"export_object: env[{name!r}] is also a var or secret of the manifest; rename one of them")
            values[name] = value
    return Env(values)
