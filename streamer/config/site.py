"""Site config: several cameras in one file, for the site runner (issue 15).

File shape::

    detector: {score_threshold: 0.6}      # top-level sections: the defaults of every camera
    events: {jsonl: events.jsonl}
    store: {path: data/events.sqlite, retention_days: 30}   # site-only sections
    log: {file: logs/site.log, rotate: daily, keep: 14}
    privacy: {keep_crops: false}
    web: {port: 8080}                     # one web server for the site
    cameras:                              # camera name -> overrides of any per-camera section
      door: {source: {uri: "rtsp://cam1/stream"}, counting: {lines: [...]}}
      desk: {source: {uri: "rtsp://cam2/stream"}, detector: {score_threshold: 0.7}}

Contract: ``load_site(path) -> SiteConfig`` or ``ConfigError`` (one line). Each camera's
config is the defaults deep-merged with its overrides (mappings merge key by key; lists and
scalars replace), validated into a full ``Config`` whose ``camera`` is its name. Errors name the
camera and the key: ``cameras.door.detector.score_threshold: ...``; an error in the defaults
is named without the ``cameras.`` prefix. Camera names are safe slugs (they become file names
and MQTT topic levels). ``web`` and ``log_level`` are site-wide (one server, one log): a camera
may not override them. Relative paths in the file are relative to the file's folder (see
streamer/config/__init__.py), including ``store.path`` and ``log.file``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from streamer import config as _cfg
from streamer.config.fields import (SLUG_RE, Bool, Int, Invalid, OptPath, Path as PathText,
                                    from_mapping, section)
from streamer.config.messages import config_error, short
from streamer.config.sections import Config, WebConfig
from streamer.errors import ConfigError

MAX_CAMERAS = 64
SITE_ONLY = ("store", "log", "privacy", "cameras")
SITE_WIDE = ("web", "log_level")  # set once for the site; per-camera overrides refused
SITE_PATH_KEYS = ("store.path", "log.file")


@section("store")
class StoreConfig:
    path: PathText = "data/events.sqlite"  # sqlite event store shared by the site's cameras
    retention_days: Int(1, 3650) = 30  # events older than this are deleted


@section("log")
class LogConfig:
    file: OptPath = None  # None = stderr only
    rotate: Literal["hourly", "daily"] = "daily"
    keep: Int(1, 1000) = 14  # rotated files kept


@section("privacy")
class PrivacyConfig:
    keep_crops: Bool = False  # store face crops with events (off: no biometric data at rest)


@dataclass(frozen=True)
class SiteConfig:
    """A validated site: one full Config per camera (in file order) plus site-only sections."""

    cameras: dict[str, Config]
    store: StoreConfig = dataclasses.field(default_factory=StoreConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    web: WebConfig = dataclasses.field(default_factory=WebConfig)
    log_level: str = "info"
    path: Optional[Path] = None  # the file it came from

    @property
    def names(self) -> list[str]:
        return list(self.cameras)


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _validate_site_section(cls, data: Any, key: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
    try:
        return from_mapping(cls, data)
    except Invalid as e:
        raise config_error(e, prefix=key) from None


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file (see the module docstring)."""
    p = Path(path)
    data, base = _cfg.read_file(p)
    if base is not None:
        _cfg.resolve_paths(data, base, _cfg.PATH_KEYS + SITE_PATH_KEYS)
    cams = data.pop("cameras", None)
    if "camera" in data:
        raise ConfigError("camera: a site config names its cameras under cameras:")
    if cams is None:
        raise ConfigError(f"config file {p}: cameras: missing (a site config maps camera "
                          f"names to their settings)")
    if not isinstance(cams, dict) or not cams:
        raise ConfigError(f"cameras: expected a mapping of camera name -> settings, got "
                          f"{short(cams)}")
    if len(cams) > MAX_CAMERAS:
        raise ConfigError(f"cameras: at most {MAX_CAMERAS} cameras, got {len(cams)}")
    store = _validate_site_section(StoreConfig, data.pop("store", None), "store")
    log = _validate_site_section(LogConfig, data.pop("log", None), "log")
    privacy = _validate_site_section(PrivacyConfig, data.pop("privacy", None), "privacy")
    defaults = _cfg.validate(data)  # errors in the shared part named without a camera
    cameras: dict[str, Config] = {}
    for name, over in cams.items():
        if not isinstance(name, str) or not SLUG_RE.match(name):
            raise ConfigError(f"cameras.{short(name)}: expected a camera name of 1-64 letters, "
                              f"digits, '_', '-' or '.', starting with a letter or digit")
        key = f"cameras.{name}"
        if over is None:
            over = {}
        if not isinstance(over, dict):
            raise ConfigError(f"{key}: expected a mapping of sections, got {type(over).__name__}")
        for k in over:
            if k == "camera":
                raise ConfigError(f"{key}.camera: the camera's name is its key under cameras:")
            if k in SITE_WIDE or k in SITE_ONLY:
                raise ConfigError(f"{key}.{k}: site-wide; set it at the top level of the file")
        merged = deep_merge(data, over)
        merged["camera"] = name
        cameras[name] = _cfg.validate(merged, prefix=key)
    return SiteConfig(cameras=cameras, store=store, log=log, privacy=privacy, web=defaults.web,
                      log_level=defaults.log_level, path=p.resolve())
