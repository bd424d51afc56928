"""Building blocks of the config models: strict value types with bounds, and ``section``.

Why strict: YAML already gives typed values, so ``realtime: "yes"`` or ``queue_size: "4"`` is a
mistake to report, not a string to coerce (pydantic's lax mode would accept both). The one
widening kept is int -> float (``max_frame_age_s: 2`` means 2.0).

``section`` turns a class into a frozen pydantic dataclass with ``extra="forbid"`` and no
inf/NaN, so the stdlib ``dataclasses.replace/fields/asdict`` keep working on config objects and
positional construction (``LineConfig("door", [[0.5, 0], [0.5, 1]])``) stays valid. Direct
construction and ``dataclasses.replace`` validate too, and raise ``ConfigError`` (one line, the
key named relative to the section), never pydantic's multi-line ``ValidationError``.

Adding a key: ``name: Int(1, 100) = 5`` (bounds inclusive), ``Float(0, 1, gt=True)``,
``Bool``, ``Text``, ``Path``, ``OptText``, ``OptPath``, ``Literal[...]``; cross-field rules in a
``@model_validator(mode="after")`` that raises ``ValueError("@key: must be ...")`` (the ``@key``
prefix names the field the message is about).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, ConfigDict, Field, Strict, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=False)

MAX_TEXT = 4096  # longest string any key takes (paths, URLs, tokens)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _no_control(v: str) -> str:
    # A NUL reaches os.open as "embedded null byte"; newlines would split our one-line logs.
    if _CONTROL.search(v):
        raise ValueError("contains a control character (NUL, newline, ...)")
    return v


def _slug(v: str) -> str:
    # Camera names become file names (spool, state) and MQTT topic levels: no '/', no '..',
    # no MQTT wildcards, nothing a shell or a path could misread.
    if not SLUG_RE.match(v):
        raise ValueError("expected a name of 1-64 letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit")
    return v


def Int(lo: int, hi: int) -> Any:
    """A strict int (bool refused) in ``lo..hi`` inclusive."""
    return Annotated[int, Strict(), Field(ge=lo, le=hi)]


def Float(lo: float, hi: float, *, gt: bool = False, lt: bool = False) -> Any:
    """A finite number (ints accepted) between ``lo`` and ``hi``; ``gt``/``lt`` make an end
    exclusive."""
    bounds = {"gt" if gt else "ge": lo, "lt" if lt else "le": hi}
    return Annotated[float, Strict(), Field(**bounds)]


Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), Field(max_length=MAX_TEXT), AfterValidator(_no_control)]
NonEmpty = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_TEXT),
                     AfterValidator(_no_control)]
Path = NonEmpty  # a file system path; relative ones are resolved by the loader (see __init__)
Slug = Annotated[str, Strict(), Field(max_length=64), AfterValidator(_slug)]
OptText = Optional[Text]
OptPath = Optional[Path]


def field_error(key: str, msg: str) -> ValueError:
    """For model validators: ``raise field_error("backoff_max_s", "must be >= ...")``."""
    return ValueError(f"@{key}: {msg}")


def section(name: str):
    """Decorator: a frozen, validated, extra="forbid" pydantic dataclass whose direct
    construction errors are ``ConfigError`` lines prefixed with ``name`` (the section's key)."""

    def wrap(cls):
        dc = _pydantic_dataclass(frozen=True, config=MODEL_CONFIG)(cls)
        init = dc.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            try:
                init(self, *args, **kwargs)
            except ValidationError as e:
                from streamer.config.messages import config_error

                raise config_error(e, prefix=name, root=type(self)) from None

        dc.__init__ = __init__
        dc.__config_section__ = name
        return dc

    return wrap
