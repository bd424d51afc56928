"""pydantic ``ValidationError`` -> one ``ConfigError`` line that names the key.

``tracker.max_misses: expected an integer >= 1 and <= 10000, got -3``. Only the first error is
reported (a user fixes one line at a time; a wall of errors from one typo helps nobody). Values
are shown through ``reprlib`` with small limits, so a huge or deeply shared value (a YAML alias
bomb that slipped through) costs a few dozen characters, never its expansion. Secrets
(``password``, ``token``) are never echoed.
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import typing
from typing import Any, Optional

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError

from streamer.errors import ConfigError

SECRET_KEYS = ("password", "token")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = 6
_repr.maxdict = 4
_repr.maxlevel = 3


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]*@")


def short(value: Any) -> str:
    """A bounded repr: at most ~80 characters whatever the value; a password inside a URL
    (``rtsp://user:pw@host``) is masked."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        value = _USERINFO.sub(r"\1***@", value[:200])
    return _repr.repr(value)


def key_path(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _unwrap(tp: Any) -> Any:
    """Strip Annotated/Optional down to the class or container type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _field(cls: Any, name: str) -> Optional[dataclasses.Field]:
    if not dataclasses.is_dataclass(cls):
        return None
    return next((f for f in dataclasses.fields(cls) if f.name == name), None)


def class_at(root: Any, loc) -> Any:
    """The model class (or None) that the location ``loc`` points into."""
    cur = root
    for part in loc:
        tp = _unwrap(cur)
        if isinstance(part, int):
            args = typing.get_args(tp)
            cur = args[0] if args else None
            continue
        origin = typing.get_origin(tp)
        if origin is dict:
            cur = typing.get_args(tp)[1]
            continue
        f = _field(tp, part)
        if f is None:
            return None
        cur = f.type
    return _unwrap(cur)


def _bounds(root: Any, loc) -> str:
    """``>= 1 and <= 10000`` from the field's Annotated metadata, '' when unknown."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    f = _field(class_at(root, loc[:-1]), loc[-1])
    if f is None:
        return ""
    ops = {Ge: (">=", "ge"), Gt: (">", "gt"), Le: ("<=", "le"), Lt: ("<", "lt")}
    parts = []
    for m in _metadata(f.type):
        for sub in getattr(m, "metadata", None) or [m]:  # FieldInfo carries Ge/Le in .metadata
            if type(sub) in ops:
                op, attr = ops[type(sub)]
                v = getattr(sub, attr)
                parts.append(f"{op} {v:g}" if isinstance(v, float) else f"{op} {v}")
    return " and ".join(dict.fromkeys(parts))


def _metadata(tp: Any) -> list:
    out = []
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            out += list(tp.__metadata__)
            tp = typing.get_args(tp)[0]
        elif origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return out
            tp = args[0]
        else:
            return out


def _known(root: Any, loc) -> str:
    cls = class_at(root, loc)
    if dataclasses.is_dataclass(cls):
        return f" (known: {', '.join(f.name for f in dataclasses.fields(cls))})"
    return ""


_KIND = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
         "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
         "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
         "list_type": "a list", "dict_type": "a mapping", "dataclass_type": "a mapping",
         "dataclass_exact_type": "a mapping", "model_type": "a mapping", "tuple_type": "a list"}


def describe(err: dict, root: Any) -> tuple[str, str]:
    """(key path, message) for one pydantic error dict."""
    loc = tuple(err.get("loc", ()))
    typ, ctx, msg = err["type"], err.get("ctx") or {}, err.get("msg", "")
    show = True
    if typ in ("unexpected_keyword_argument", "extra_forbidden"):
        text, show = "unknown key" + _known(root, loc[:-1]), False
    elif typ in ("missing", "missing_argument", "missing_keyword_only_argument"):
        text, show = "required key is missing", False
    elif typ in ("unexpected_positional_argument",):
        text, show = "too many positional values", False
    elif typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        b = _bounds(root, loc)
        if not b:
            op = {"greater_than": "> ", "greater_than_equal": ">= ", "less_than": "< ",
                  "less_than_equal": "<= "}[typ]
            b = op + str(next(iter(ctx.values()), ""))
        f = _field(class_at(root, loc[:-1]), loc[-1]) if loc and isinstance(loc[-1], str) else None
        is_int = _unwrap(f.type) is int if f is not None else isinstance(err.get("input"), int)
        kind = "an integer" if is_int else "a number"
        text = f"expected {kind} {b}"
    elif typ in _KIND:
        b = _bounds(root, loc) if typ in ("int_type", "float_type", "finite_number") else ""
        text = f"expected {_KIND[typ]}" + (f" {b}" if b else "")
    elif typ == "literal_error":
        text = f"expected {ctx.get('expected', '')}"
    elif typ == "string_too_short":
        text = "must not be empty"
    elif typ == "string_too_long":
        text = f"longer than {ctx.get('max_length')} characters"
    elif typ in ("too_short", "too_long"):
        n = ctx.get("min_length" if typ == "too_short" else "max_length")
        text = f"expected at {'least' if typ == 'too_short' else 'most'} {n} items"
    elif typ in ("value_error", "assertion_error"):
        text = str(ctx.get("error", msg))
        for lead in ("Value error, ", "Assertion failed, "):
            text = text.removeprefix(lead)
        if text.startswith("@") and ": " in text:
            name, text = text[1:].split(": ", 1)
            loc, show = loc + (name,), False
    else:
        text = msg
    if show and "input" in err:
        hidden = any(isinstance(p, str) and p in SECRET_KEYS for p in loc)
        text += ", got <hidden>" if hidden else f", got {short(err['input'])}"
    return key_path(loc), text


def config_error(e: ValidationError, prefix: str = "", root: Any = None) -> ConfigError:
    errors = e.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return ConfigError(f"{prefix or 'config'}: invalid")
    err = dict(errors[0])
    loc = list(err.get("loc", ()))
    if loc and isinstance(loc[0], int) and dataclasses.is_dataclass(root):
        # Positional construction (LineConfig("door", pts)): name the field, not its index.
        names = [f.name for f in dataclasses.fields(root)]
        if loc[0] < len(names):
            loc[0] = names[loc[0]]
            err["loc"] = tuple(loc)
    key, text = describe(err, root)
    full = ".".join(p for p in (prefix, key) if p) if not key.startswith("[") else prefix + key
    return ConfigError(f"{full or 'config'}: {text}")
