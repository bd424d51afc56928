"""Building blocks of the config sections: value rules with bounds, and ``section``.

Why our own ~370 lines and not pydantic: a stream process holds its config for hours and needs
it validated once. pydantic cost each stream process 18 MB of resident memory (its Rust core and
one compiled validator per section) and ~0.3 s of its start-up (issue 13: <= 150 MB per stream,
<= 1 s to the first frame); the rules below are the whole of what the config needs.

Why strict: YAML already gives typed values, so ``realtime: "yes"`` or ``queue_size: "4"`` is a
mistake to report, not a string to coerce. The one widening kept is int -> float
(``max_frame_age_s: 2`` means 2.0).

``section`` turns a class into a frozen stdlib dataclass that validates on construction, so
``dataclasses.replace/fields/asdict`` keep working on config objects, ``replace`` re-validates,
and positional construction (``LineConfig("door", [[0.5, 0], [0.5, 1]])``) stays valid. Errors
are ``ConfigError`` (one line, the key named relative to the section, see messages.py).

Adding a key: ``name: Int(1, 100) = 5`` (bounds inclusive), ``Float(0, 1, gt=True)``,
``Bool``, ``Text``, ``Path``, ``OptText``, ``OptPath``, ``Literal[...]``, ``ListOf(rule)``,
``NonEmpty.then(check)`` (``check(value)`` raises ``ValueError("message")``); cross-field rules
in an ``@after`` method that raises ``field_error("key", "must be ...")``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from typing import Any, Callable, Optional

MAX_TEXT = 4096  # longest string any key takes (paths, URLs, tokens)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NO_VALUE = object()


class Invalid(Exception):
    """A value broke its rule: where (key path from the section being built), what, and the
    value (shown in the message unless secret; ``_NO_VALUE`` for none)."""

    def __init__(self, loc: tuple, text: str, value: Any = _NO_VALUE):
        super().__init__(text)
        self.loc, self.text, self.value = loc, text, value


class Rule:
    """One key's contract: ``check(value, loc)`` returns the value as the config holds it
    (int -> float, mapping -> section) or raises ``Invalid``; ``schema()`` is its JSON Schema."""

    checks: tuple = ()

    def then(self, fn: Callable[[Any], Any]) -> "Rule":
        """The same rule followed by ``fn(value) -> value`` (raises ValueError with a message)."""
        out = copy_rule(self)
        out.checks = self.checks + (fn,)
        return out

    def check(self, v: Any, loc: tuple) -> Any:
        raw = v  # messages show what the user wrote (13, not 13.0)
        v = self._check(v, loc)
        for fn in self.checks:
            try:
                v = fn(v)
            except ValueError as e:
                raise Invalid(loc, str(e), raw) from None
        return v

    def _check(self, v: Any, loc: tuple) -> Any:
        raise NotImplementedError

    def schema(self, defs: dict) -> dict:
        raise NotImplementedError


def copy_rule(rule: Rule) -> Rule:
    out = object.__new__(type(rule))
    out.__dict__.update(rule.__dict__)
    return out


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class Number(Rule):
    def __init__(self, kind: type, lo: float, hi: float, gt: bool = False, lt: bool = False):
        self.kind, self.lo, self.hi, self.gt, self.lt = kind, lo, hi, gt, lt
        self.bounds = f"{'>' if gt else '>='} {_num(lo)} and {'<' if lt else '<='} {_num(hi)}"
        self.noun = "an integer" if kind is int else "a number"

    def _check(self, v: Any, loc: tuple) -> Any:
        if self.kind is int:
            if type(v) is not int:  # bool is an int subclass: refused
                raise Invalid(loc, f"expected an integer {self.bounds}", v)
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise Invalid(loc, f"expected a number {self.bounds}", v)
            raw = v
            try:
                v = float(v)
            except OverflowError:
                v = math.inf
            if not math.isfinite(v):
                raise Invalid(loc, f"expected a finite number {self.bounds}", raw)
        low = v <= self.lo if self.gt else v < self.lo
        high = v >= self.hi if self.lt else v > self.hi
        if low or high:
            raise Invalid(loc, f"expected {self.noun} {self.bounds}", raw if self.kind is float else v)
        return v

    def schema(self, defs: dict) -> dict:
        return {"type": "integer" if self.kind is int else "number",
                "exclusiveMinimum" if self.gt else "minimum": self.lo,
                "exclusiveMaximum" if self.lt else "maximum": self.hi}


class _Bool(Rule):
    def _check(self, v: Any, loc: tuple) -> Any:
        if type(v) is not bool:
            raise Invalid(loc, "expected true or false", v)
        return v

    def schema(self, defs: dict) -> dict:
        return {"type": "boolean"}


class Str(Rule):
    """A string without control characters (a NUL reaches os.open as "embedded null byte";
    newlines would split our one-line logs), ``min_len..max_len`` long."""

    def __init__(self, min_len: int = 0, max_len: int = MAX_TEXT):
        self.min_len, self.max_len = min_len, max_len

    def _check(self, v: Any, loc: tuple) -> Any:
        if type(v) is not str:
            raise Invalid(loc, "expected a string", v)
        if len(v) < self.min_len:
            raise Invalid(loc, "must not be empty")
        if len(v) > self.max_len:
            raise Invalid(loc, f"longer than {self.max_len} characters", v)
        if _CONTROL.search(v):
            raise Invalid(loc, "contains a control character (NUL, newline, ...)", v)
        return v

    def schema(self, defs: dict) -> dict:
        out = {"type": "string", "maxLength": self.max_len}
        if self.min_len:
            out["minLength"] = self.min_len
        return out


class OneOf(Rule):
    """One of ``values`` (what ``Literal[...]`` annotations become); types must match too."""

    def __init__(self, values: tuple):
        self.values = tuple(values)
        shown = [repr(x) for x in self.values]
        self.expected = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]

    def _check(self, v: Any, loc: tuple) -> Any:
        if not any(type(v) is type(x) and v == x for x in self.values):
            raise Invalid(loc, f"expected {self.expected}", v)
        return v

    def schema(self, defs: dict) -> dict:
        kind = "integer" if all(type(x) is int for x in self.values) else "string"
        return {"type": kind, "enum": list(self.values)}


class Maybe(Rule):
    """``None`` or the inner rule."""

    def __init__(self, inner: Rule):
        self.inner = inner

    def _check(self, v: Any, loc: tuple) -> Any:
        return self.inner.check(v, loc)

    def check(self, v: Any, loc: tuple) -> Any:
        return None if v is None else super().check(v, loc)

    def schema(self, defs: dict) -> dict:
        return {"anyOf": [self.inner.schema(defs), {"type": "null"}]}


class ListOf(Rule):
    def __init__(self, item: Any, min_len: int = 0, max_len: Optional[int] = None):
        self.item, self.min_len, self.max_len = as_rule(item), min_len, max_len

    def _check(self, v: Any, loc: tuple) -> Any:
        if not isinstance(v, (list, tuple)):
            raise Invalid(loc, "expected a list", v)
        if len(v) < self.min_len:
            raise Invalid(loc, f"expected at least {self.min_len} items", v)
        if self.max_len is not None and len(v) > self.max_len:
            raise Invalid(loc, f"expected at most {self.max_len} items", v)
        return [self.item.check(x, loc + (i,)) for i, x in enumerate(v)]

    def schema(self, defs: dict) -> dict:
        out = {"type": "array", "items": self.item.schema(defs)}
        if self.min_len:
            out["minItems"] = self.min_len
        if self.max_len is not None:
            out["maxItems"] = self.max_len
        return out


class Nested(Rule):
    """A section inside another: a mapping of its keys (or an instance already built)."""

    def __init__(self, cls: type):
        self.cls = cls

    def _check(self, v: Any, loc: tuple) -> Any:
        if isinstance(v, self.cls):
            return v
        return from_mapping(self.cls, v, loc)

    def schema(self, defs: dict) -> dict:
        if self.cls.__name__ not in defs:
            defs[self.cls.__name__] = section_schema(self.cls, defs)
        return {"$ref": f"#/$defs/{self.cls.__name__}"}


def as_rule(ann: Any) -> Rule:
    """The rule of an annotation: a Rule, a section class or ``Literal[...]``."""
    if isinstance(ann, Rule):
        return ann
    if isinstance(ann, type) and hasattr(ann, "__config_section__"):
        return Nested(ann)
    if typing.get_origin(ann) is typing.Literal:
        return OneOf(typing.get_args(ann))
    raise TypeError(f"config field annotation {ann!r} is not a rule")


def Int(lo: int, hi: int) -> Rule:
    """A strict int (bool refused) in ``lo..hi`` inclusive."""
    return Number(int, lo, hi)


def Float(lo: float, hi: float, *, gt: bool = False, lt: bool = False) -> Rule:
    """A finite number (ints accepted, held as float) between ``lo`` and ``hi``; ``gt``/``lt``
    make an end exclusive."""
    return Number(float, lo, hi, gt, lt)


def _slug(v: str) -> str:
    # Camera names become file names (spool, state) and MQTT topic levels: no '/', no '..',
    # no MQTT wildcards, nothing a shell or a path could misread.
    if not SLUG_RE.match(v):
        raise ValueError("expected a name of 1-64 letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    return v


Bool = _Bool()
Text = Str()
NonEmpty = Str(min_len=1)
Path = NonEmpty  # a file system path; relative ones are resolved by the loader (see __init__)
Slug = Str(max_len=64).then(_slug)
OptText = Maybe(Text)
OptPath = Maybe(Path)


def field_error(key: str, msg: str) -> ValueError:
    """For ``@after`` methods: ``raise field_error("backoff_max_s", "must be >= ...")``."""
    return ValueError(f"@{key}: {msg}")


def after(fn):
    """Mark a section method as a cross-field rule, run once all keys are set."""
    fn.__config_after__ = True
    return fn


def from_mapping(cls: type, data: Any, loc: tuple = ()) -> Any:
    """A section instance from a mapping of its keys (raises ``Invalid``)."""
    if not isinstance(data, dict):
        raise Invalid(loc, "expected a mapping", data)
    obj = object.__new__(cls)
    _fill(obj, data, loc)
    return obj


def _fill(obj: Any, given: dict, loc: tuple) -> None:
    cls = type(obj)
    rules = cls.__config_rules__
    for k in given:
        if k not in rules:
            raise Invalid(loc + (str(k),), f"unknown key (known: {', '.join(rules)})")
    for f in dataclasses.fields(cls):
        if f.name in given:
            v = rules[f.name].check(given[f.name], loc + (f.name,))
        elif f.default is not dataclasses.MISSING:
            v = f.default
        elif f.default_factory is not dataclasses.MISSING:
            v = f.default_factory()
        else:
            raise Invalid(loc + (f.name,), "required key is missing")
        object.__setattr__(obj, f.name, v)
    for fn in cls.__config_afters__:
        try:
            fn(obj)
        except ValueError as e:
            text = str(e)
            if text.startswith("@") and ": " in text:
                key, text = text[1:].split(": ", 1)
                raise Invalid(loc + (key,), text) from None
            raise Invalid(loc, text) from None


def section(name: str):
    """Decorator: a frozen dataclass that validates its keys on construction (unknown keys
    refused), whose errors are ``ConfigError`` lines prefixed with ``name`` (the section's key)."""

    def wrap(cls):
        dc = dataclasses.dataclass(frozen=True)(cls)
        dc.__config_section__ = name
        module = vars(sys.modules[cls.__module__])
        dc.__config_rules__ = {f.name: as_rule(eval(f.type, module) if isinstance(f.type, str) else f.type)
                               for f in dataclasses.fields(dc)}
        dc.__config_afters__ = tuple(v for v in vars(cls).values() if getattr(v, "__config_after__", False))
        names = list(dc.__config_rules__)

        def __init__(self, *args, **kwargs):
            from streamer.config.messages import config_error
            from streamer.errors import ConfigError

            if len(args) > len(names):
                raise ConfigError(f"{name or 'config'}: too many positional values")
            given = dict(zip(names, args))
            for k, v in kwargs.items():
                if k in given:
                    raise ConfigError(f"{'.'.join(p for p in (name, k) if p)}: given twice")
                given[k] = v
            try:
                _fill(self, given, ())
            except Invalid as e:
                raise config_error(e, prefix=name) from None

        __init__.__qualname__ = f"{dc.__qualname__}.__init__"
        dc.__init__ = __init__
        return dc

    return wrap


def _title(name: str) -> str:
    return " ".join(w.capitalize() for w in name.split("_"))


def section_schema(cls: type, defs: Optional[dict] = None) -> dict:
    """JSON Schema of a section; nested sections go to ``defs`` (``$defs``) by class name."""
    top = defs is None
    defs = {} if top else defs
    props = {}
    for f in dataclasses.fields(cls):
        rule = cls.__config_rules__[f.name]
        p = rule.schema(defs)
        if not isinstance(rule, Nested):
            p["title"] = _title(f.name)
            if f.default is not dataclasses.MISSING:
                p["default"] = f.default
        props[f.name] = p
    out = {"type": "object", "title": cls.__name__, "additionalProperties": False,
           "properties": props}
    if top and defs:
        out["$defs"] = defs
    return out
