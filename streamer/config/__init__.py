"""Configuration: one YAML file validated into frozen dataclasses (one per section, fields.py).

Contract: ``load(path, overrides)`` returns a ``Config`` or raises ``ConfigError`` whose message
is one line naming the key path (``tracker.max_misses: expected an integer >= 1 and <= 10000,
got -3``). Unknown keys are rejected (as Frigate does), so a typo never
silently falls back to a default; every number has bounds (sections.py). Every CLI flag
overrides exactly one key through ``overrides`` (a ``{"section.key": value}`` dict; ``None``
values are ignored). Files are read with a bounded ``SafeLoader`` (yamlfile.py: size, UTF-8,
duplicate keys, alias bombs).

Relative paths. A relative path written in a config file (``models_dir``, ``events.jsonl``,
``output.video``, ``mqtt.spool_dir``, ``mqtt.ca_file``/``cert_file``/``key_file``,
``counting.state_dir``, and in a site file ``store.path`` and ``log.file``) is relative to the
directory of that file, so a config means the same thing whatever directory the service is
started from. Defaults that the file does not set (``spool``, ``state``) and values given on
the command line are relative to the working directory, as a shell user expects; the
built-in ``config/default.yaml`` is treated as "no file" (its values are the defaults).

The config objects are stdlib-compatible dataclasses: ``dataclasses.replace`` (which
re-validates), ``fields`` and ``asdict`` work; ``==`` compares values. A multi-camera site file
(``cameras:``) is loaded with ``load_site`` (site.py).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Optional

from streamer.config.fields import Invalid, from_mapping
from streamer.config.messages import config_error
from streamer.config.sections import (SECTIONS, AttributesConfig, BatchConfig, Config,
                                      CountingConfig, DetectorConfig, EventsConfig, LineConfig,
                                      MqttConfig, OutputConfig, SourceConfig, TrackerConfig,
                                      WebConfig, ZoneConfig)
from streamer.config.yamlfile import read_mapping
from streamer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PATH = ROOT / "config" / "default.yaml"

# Keys holding file system paths; relative values from a file are resolved against its folder.
PATH_KEYS = ("models_dir", "events.jsonl", "output.video", "mqtt.spool_dir", "mqtt.ca_file",
             "mqtt.cert_file", "mqtt.key_file", "counting.state_dir")

__all__ = ["Config", "SourceConfig", "DetectorConfig", "TrackerConfig", "AttributesConfig",
           "EventsConfig", "OutputConfig", "MqttConfig", "LineConfig", "ZoneConfig",
           "CountingConfig", "WebConfig", "BatchConfig", "ConfigError", "DEFAULT_PATH", "ROOT",
           "PATH_KEYS", "SECTIONS", "load", "from_dict", "replace", "validate", "read_file",
           "set_path", "resolve_paths", "load_site", "SiteConfig"]


def validate(data: Any, prefix: str = "") -> Config:
    """A plain mapping -> Config, or ConfigError (key named, ``prefix`` put in front)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    bad = next((k for k in data if not isinstance(k, str)), None)
    if bad is not None:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{where}{bad!r}: unknown key (keys are names, not {type(bad).__name__}s)")
    try:
        return from_mapping(Config, data)
    except Invalid as e:
        raise config_error(e, prefix=prefix) from None


def set_path(data: dict, dotted: str, value: Any) -> None:
    """``set_path(d, "source.uri", "x")`` creates or replaces the nested key."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{part}: expected a mapping, got {type(nxt).__name__}")
        node = nxt
    node[parts[-1]] = value


def _get_path(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def resolve_paths(data: dict, base: Path, keys=PATH_KEYS) -> None:
    """Make the relative path values present in ``data`` absolute against ``base`` (in place).
    Values of the wrong type are left for validation to report."""
    for k in keys:
        v = _get_path(data, k)
        if isinstance(v, str) and v and "\x00" not in v and not Path(v).is_absolute():
            set_path(data, k, str(base / v))


def read_file(path: Optional[str | Path]) -> tuple[dict, Optional[Path]]:
    """(mapping, folder its relative paths are relative to, None = working directory)."""
    p = Path(path) if path else DEFAULT_PATH
    data = read_mapping(p)
    is_default = p.resolve() == DEFAULT_PATH.resolve() if p.exists() else False
    return data, (None if is_default else p.resolve().parent)


def load(path: Optional[str | Path] = None, overrides: Optional[dict] = None) -> Config:
    """Load ``path`` (default ``config/default.yaml``), apply ``overrides``, validate."""
    data, base = read_file(path)
    if "cameras" in data:
        raise ConfigError("cameras: this is a site config (several cameras); run it with the "
                          "site runner, which reads it with config.load_site")
    if base is not None:
        resolve_paths(data, base)
    for k, v in (overrides or {}).items():
        if v is not None:
            set_path(data, k, v)
    return validate(data)


def from_dict(data: dict) -> Config:
    """Build a Config from a plain dict (tests, embedding); paths stay as given."""
    return validate(copy.deepcopy(data))


def replace(cfg: Config, **sections) -> Config:
    """``dataclasses.replace`` that re-validates (raises ConfigError)."""
    return dataclasses.replace(cfg, **sections)


from streamer.config.site import SiteConfig, load_site  # noqa: E402  (site uses the above)
