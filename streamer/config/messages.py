"""A broken rule (fields.Invalid) -> one ``ConfigError`` line that names the key.

``tracker.max_misses: expected an integer >= 1 and <= 10000, got -3``. Only the first error is
reported (a user fixes one line at a time; a wall of errors from one typo helps nobody). Values
are shown through ``reprlib`` with small limits, so a huge or deeply shared value (a YAML alias
bomb that slipped through) costs a few dozen characters, never its expansion. Secrets
(``password``, ``token``) are never echoed.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

from streamer.config.fields import _NO_VALUE, Invalid
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


def config_error(e: Invalid, prefix: str = "") -> ConfigError:
    key = key_path(e.loc)
    full = prefix + key if key.startswith("[") else ".".join(p for p in (prefix, key) if p)
    text = e.text
    if e.value is not _NO_VALUE:
        hidden = any(isinstance(p, str) and p in SECRET_KEYS for p in e.loc)
        text += ", got <hidden>" if hidden else f", got {short(e.value)}"
    return ConfigError(f"{full or 'config'}: {text}")
