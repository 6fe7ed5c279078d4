"""Type checks of config values, from the config dataclasses' own type hints.

Every field of every config dataclass is checked against its annotation, so a field added
later is checked without code of its own.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

INT64 = 2**63


def type_problem(config: Any, where: str = "") -> str | None:
    """None if every field of the dataclass `config` matches its type hint, else one line
    naming the first field that does not: the field, what it must be, the value."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        problem = _type_problem(getattr(config, f.name), hints.get(f.name, Any), f"{where}{f.name}")
        if problem is not None:
            return problem
    return None


def _type_problem(value: Any, hint: Any, where: str) -> str | None:
    """None if `value` fits `hint`, else one line: the field, what it must be, the value."""
    if hint is Any or hint is typing.Any:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        problems = [_type_problem(value, a, where) for a in options]
        if any(p is None for p in problems):
            return None
        if len(options) == 1 and not problems[0].startswith(f"{where} must be "):
            return problems[0]  # a nested field or element is wrong: name that one
        if float in options and isinstance(value, float):
            return problems[options.index(float)]  # NaN or infinite: say so
        return f"{where} must be {' or '.join(_describe(a) for a in args)}, not {value!r}"
    if origin is Literal:
        if value in args:
            return None
        return f"{where} must be one of {', '.join(repr(a) for a in args)}, not {value!r}"
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, origin):
            return f"{where} must be {_describe(hint)}, not {value!r}"
        per_position = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        for i, element in enumerate(value):
            item = (args[i] if i < len(args) else Any) if per_position else (args[0] if args else Any)
            problem = _type_problem(element, item, f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where} must be a mapping, not {value!r}"
        key_hint, value_hint = args if args else (Any, Any)
        for key, element in value.items():
            problem = _type_problem(key, key_hint, f"{where} key {key!r}") or _type_problem(
                element, value_hint, f"{where}.{key}"
            )
            if problem is not None:
                return problem
        return None
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            return f"{where} must be a mapping of fields, not {value!r}"
        return type_problem(value, f"{where}.")
    if hint is bool:
        return None if isinstance(value, bool) else f"{where} must be true or false, not {value!r}"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -INT64 <= value < INT64:  # values reach numpy and Arrow columns
            return f"{where} must be a whole number of at most 19 digits, not {value!r}"
        return None if ok else f"{where} must be a whole number, not {value!r}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):  # NaN compares false with every bound: no bound at all
            return f"{where} must be a finite number, not {value!r}"
        return None if ok else f"{where} must be a number, not {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"{where} must be a string, not {value!r}"
    if isinstance(hint, type):
        return None if isinstance(value, hint) else f"{where} must be {_describe(hint)}, not {value!r}"
    return None  # a hint this checker does not know (a TypeVar, a Protocol): not checked


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(hint)
        return f"a list (each {_describe(args[0])})" if args else "a list"
    if origin is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))
