"""Configuration: one YAML file loaded into frozen dataclasses.

Contract: ``load(path, overrides)`` returns a ``Config`` or raises ``ConfigError`` whose message
names the key path (``tracker.max_misses: expected int >= 1, got -3``). Unknown keys are
rejected, so a typo never silently falls back to a default. Every CLI flag overrides exactly
one key through ``overrides`` (a ``{"section.key": value}`` dict). Files are read with
``yaml.safe_load`` only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from streamer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "config" / "default.yaml"


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


@dataclass(frozen=True)
class SourceConfig:
    uri: str = "0"  # webcam index, file, folder, rtsp://, http(s)://
    realtime: bool = False  # pace a file at its own fps (drops like a camera when late)
    loop: bool = False  # replay a file forever (soak tests)
    queue_size: int = 4  # frames between capture and inference
    folder_fps: float = 10.0  # pace of a folder of images played as a stream (with realtime)
    max_frame_age_s: float = 1.0  # live frames older than this at processing are dropped
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0  # no frame for this long = source lost
    reconnect: bool = True  # live sources only
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_reconnects: int = 0  # 0 = forever

    def validate(self, p: str) -> None:
        _check(self.queue_size >= 1, f"{p}.queue_size", f"expected int >= 1, got {self.queue_size}")
        for k in ("folder_fps", "max_frame_age_s", "open_timeout_s", "read_timeout_s",
                  "backoff_initial_s", "backoff_max_s"):
            _check(getattr(self, k) > 0, f"{p}.{k}", f"expected a number > 0, got {getattr(self, k)}")
        _check(self.backoff_max_s >= self.backoff_initial_s, f"{p}.backoff_max_s",
               "must be >= backoff_initial_s")
        _check(self.max_reconnects >= 0, f"{p}.max_reconnects", "expected int >= 0 (0 = forever)")


@dataclass(frozen=True)
class DetectorConfig:
    kind: str = "yunet"  # yunet | ssd_tf | ssd_caffe
    width: int = 640  # frames wider than this are downscaled for detection
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    low_score_threshold: float = 0.3  # detections kept for the tracker's second pass
    min_face_px: int = 12  # smaller boxes (in full-frame pixels) are discarded

    def validate(self, p: str) -> None:
        _check(self.kind in ("yunet", "ssd_tf", "ssd_caffe"), f"{p}.kind",
               f"expected one of yunet, ssd_tf, ssd_caffe, got {self.kind!r}")
        _check(self.width >= 64, f"{p}.width", f"expected int >= 64, got {self.width}")
        for k in ("score_threshold", "nms_threshold", "low_score_threshold"):
            v = getattr(self, k)
            _check(0 < v < 1, f"{p}.{k}", f"expected a number between 0 and 1, got {v}")
        _check(self.low_score_threshold <= self.score_threshold, f"{p}.low_score_threshold",
               "must be <= score_threshold")
        _check(self.min_face_px >= 0, f"{p}.min_face_px", "expected int >= 0")


@dataclass(frozen=True)
class TrackerConfig:
    min_hits: int = 3
    max_misses: int = 15
    iou_threshold: float = 0.25
    scene_cut_threshold: float = 0.3  # 0..1 score: min of colour and structure change; 0 disables

    def validate(self, p: str) -> None:
        _check(self.min_hits >= 1, f"{p}.min_hits", f"expected int >= 1, got {self.min_hits}")
        _check(self.max_misses >= 1, f"{p}.max_misses", f"expected int >= 1, got {self.max_misses}")
        _check(0 < self.iou_threshold < 1, f"{p}.iou_threshold", "expected a number between 0 and 1")
        _check(0 <= self.scene_cut_threshold <= 1, f"{p}.scene_cut_threshold",
               "expected a number between 0 and 1")


@dataclass(frozen=True)
class AttributesConfig:
    enabled: bool = True
    model_set: str = "dlib"  # dlib (CC0 ONNX nets) | levi_hassner (user-supplied Caffe)
    reclassify_every: int = 15  # frames between re-classifications of a track
    better_view_ratio: float = 1.25  # quality gain that triggers an early re-classification
    min_face_px: int = 36  # faces narrower than this are not judged
    min_sharpness: float = 15.0  # variance of Laplacian on the chip; below = too blurred
    flip_average: bool = True  # average each chip with its mirror image
    max_per_frame: int = 16  # cap on faces classified in one frame (bounds worst-case cost)

    def validate(self, p: str) -> None:
        _check(self.model_set in ("dlib", "levi_hassner"), f"{p}.model_set",
               f"expected dlib or levi_hassner, got {self.model_set!r}")
        _check(self.reclassify_every >= 1, f"{p}.reclassify_every", "expected int >= 1")
        _check(self.better_view_ratio >= 1, f"{p}.better_view_ratio", "expected a number >= 1")
        _check(self.min_face_px >= 8, f"{p}.min_face_px", "expected int >= 8")
        _check(self.min_sharpness >= 0, f"{p}.min_sharpness", "expected a number >= 0")
        _check(self.max_per_frame >= 1, f"{p}.max_per_frame", "expected int >= 1")


@dataclass(frozen=True)
class EventsConfig:
    jsonl: Optional[str] = None  # path of the JSONL event log
    stdout: bool = False  # print events as JSON lines on stdout
    update_min_interval_s: float = 1.0  # at most one `update` per track per interval
    age_change_years: float = 5.0  # an age change this large is "material"

    def validate(self, p: str) -> None:
        _check(self.update_min_interval_s >= 0, f"{p}.update_min_interval_s", "expected >= 0")
        _check(self.age_change_years > 0, f"{p}.age_change_years", "expected > 0")


@dataclass(frozen=True)
class OutputConfig:
    display: bool = False  # live OpenCV window (q / Esc quits)
    video: Optional[str] = None  # annotated mp4
    max_frames: int = 0  # 0 = until the source ends

    def validate(self, p: str) -> None:
        _check(self.max_frames >= 0, f"{p}.max_frames", "expected int >= 0 (0 = no limit)")


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"  # mqtt:// or mqtts://
    username: Optional[str] = None
    password: Optional[str] = None
    client_id: Optional[str] = None
    topic_prefix: str = "streamer"
    qos: int = 1
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    keepalive_s: int = 30
    spool_dir: str = "spool"
    spool_max_events: int = 100000
    fsync: str = "batch"  # always | batch | never

    def validate(self, p: str) -> None:
        _check(self.url.startswith(("mqtt://", "mqtts://")), f"{p}.url",
               f"expected mqtt://host:port or mqtts://host:port, got {self.url!r}")
        _check(self.qos in (0, 1, 2), f"{p}.qos", f"expected 0, 1 or 2, got {self.qos}")
        _check(self.spool_max_events >= 1, f"{p}.spool_max_events", "expected int >= 1")
        _check(self.fsync in ("always", "batch", "never"), f"{p}.fsync",
               f"expected always, batch or never, got {self.fsync!r}")
        _check(self.keepalive_s >= 5, f"{p}.keepalive_s", "expected int >= 5")


@dataclass(frozen=True)
class LineConfig:
    name: str = "line"
    points: list = field(default_factory=list)  # [[x, y], [x, y]]; fractions if all <= 1

    def validate(self, p: str) -> None:
        _check(isinstance(self.points, list) and len(self.points) == 2 and all(
            isinstance(q, (list, tuple)) and len(q) == 2 for q in self.points),
            f"{p}.points", "expected two points [[x1, y1], [x2, y2]]")


@dataclass(frozen=True)
class ZoneConfig:
    name: str = "zone"
    points: list = field(default_factory=list)  # polygon, >= 3 points

    def validate(self, p: str) -> None:
        _check(isinstance(self.points, list) and len(self.points) >= 3 and all(
            isinstance(q, (list, tuple)) and len(q) == 2 for q in self.points),
            f"{p}.points", "expected a polygon of at least 3 [x, y] points")


@dataclass(frozen=True)
class CountingConfig:
    lines: list[LineConfig] = field(default_factory=list)
    zones: list[ZoneConfig] = field(default_factory=list)
    anchor: str = "center"  # center | bottom (point of the box that crosses)
    hysteresis: float = 0.02  # fraction of frame diagonal a track must clear past a line
    summary_interval_s: float = 60.0  # 0 disables periodic summaries
    age_bins: list = field(default_factory=lambda: [13, 18, 25, 35, 45, 55, 65])
    reset: str = "daily@00:00"  # daily@HH:MM (local time) | never
    state_dir: str = "state"

    def validate(self, p: str) -> None:
        _check(self.anchor in ("center", "bottom"), f"{p}.anchor", "expected center or bottom")
        _check(0 <= self.hysteresis < 0.5, f"{p}.hysteresis", "expected 0 <= x < 0.5")
        _check(self.summary_interval_s >= 0, f"{p}.summary_interval_s", "expected >= 0")
        _check(all(isinstance(b, (int, float)) for b in self.age_bins)
               and list(self.age_bins) == sorted(self.age_bins), f"{p}.age_bins",
               "expected an increasing list of ages")
        _check(self.reset == "never" or (self.reset.startswith("daily@") and len(self.reset) == 11),
               f"{p}.reset", f"expected never or daily@HH:MM, got {self.reset!r}")


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = None  # when set, Authorization: Bearer <token> on every API route
    max_body_mb: float = 20.0
    max_side: int = 5000  # larger images are downscaled (as the seed did)
    max_pixels: int = 100_000_000  # decompression-bomb guard (declared width x height)
    jpeg_quality: int = 85
    workers: int = 0  # analyzer threads, each with its own nets; 0 = min(2, cores)

    def validate(self, p: str) -> None:
        _check(self.workers >= 0, f"{p}.workers", "expected int >= 0 (0 = min(2, cores))")
        _check(0 < self.port < 65536, f"{p}.port", f"expected 1..65535, got {self.port}")
        _check(self.max_body_mb > 0, f"{p}.max_body_mb", "expected > 0")
        _check(self.max_side >= 64, f"{p}.max_side", "expected int >= 64")
        _check(self.max_pixels >= 64 * 64, f"{p}.max_pixels", "expected int >= 4096")
        _check(1 <= self.jpeg_quality <= 100, f"{p}.jpeg_quality", "expected 1..100")


@dataclass(frozen=True)
class BatchConfig:
    workers: int = 0  # 0 = one per core
    conf: float = 0.5
    recursive: bool = False
    annotate: bool = True

    def validate(self, p: str) -> None:
        _check(self.workers >= 0, f"{p}.workers", "expected int >= 0 (0 = one per core)")
        _check(0 < self.conf < 1, f"{p}.conf", "expected a number between 0 and 1")


@dataclass(frozen=True)
class Config:
    camera: str = "camera"
    models_dir: Optional[str] = None  # default: <project>/models
    log_level: str = "info"
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    counting: CountingConfig = field(default_factory=CountingConfig)
    web: WebConfig = field(default_factory=WebConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)

    def validate(self, p: str = "") -> None:
        _check(bool(self.camera) and "/" not in self.camera and "#" not in self.camera
               and "+" not in self.camera, "camera",
               f"expected a name without / # +, got {self.camera!r}")
        _check(self.log_level in ("debug", "info", "warning", "error"), "log_level",
               "expected debug, info, warning or error")


# ---- generic loader --------------------------------------------------------------------

def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list or tp is list:
        return isinstance(value, list)
    return True


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return " or ".join(_type_name(a) for a in args) + (" or null" if type(None) in typing.get_args(tp) else "")
    return getattr(tp, "__name__", str(tp))


def _build(cls: type, data: Any, path: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = f"{path}.{f.name}" if path else f.name
        tp, value = hints[f.name], data[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, value, key)
            continue
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list and typing.get_args(tp) else None
        if item is not None and dataclasses.is_dataclass(item):
            if not isinstance(value, list):
                raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
            kwargs[f.name] = [_build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
            continue
        if not _type_ok(value, tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                           and float in typing.get_args(tp) and isinstance(value, int)):
            value = float(value)
        kwargs[f.name] = value
    obj = cls(**kwargs)
    obj.validate(path)
    return obj


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: cannot set inside a non-mapping")
    node[parts[-1]] = value


def load(path: Optional[str | Path] = None, overrides: Optional[dict] = None) -> Config:
    """Load ``path`` (default ``config/default.yaml``), apply ``overrides``, validate."""
    p = Path(path) if path else DEFAULT_PATH
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as e:
        raise ConfigError(f"config file {p} cannot be read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {p}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping at the top level")
    for k, v in (overrides or {}).items():
        if v is not None:
            _set_path(data, k, v)
    return _build(Config, data, "")


def from_dict(data: dict) -> Config:
    """Build a Config from a plain dict (tests, embedding)."""
    return _build(Config, data, "")


def replace(cfg: Config, **sections) -> Config:
    return dataclasses.replace(cfg, **sections)
