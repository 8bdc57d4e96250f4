"""The generated binding of ``dohost:object/types``. componentize-py names it
``types``, or ``dohost_object_types`` when the class's worlds also import
``wasi:http/types`` (``-w dohost:sdk/http-client``, for :func:`dohost.fetch`)."""

try:
    from wit_world.imports import dohost_object_types as types
except ImportError:
    from wit_world.imports import types

__all__ = ["types"]
