"""One model per config section, with its defaults and bounds (the README's "Configuration"
table and schema/config.schema.json are generated from / checked against these).

Bounds are "sane", not "tight": they refuse values that cannot be meant (a 1e-9 s read
deadline reconnects forever, 100000 web workers load nets until out of memory, 1e308 s
overflows FFmpeg's microsecond timeout) and leave every sensible setting open.

No ``from __future__ import annotations`` here: each annotation is the key's rule (fields.py),
an object made at class creation.
"""

import re
from dataclasses import field
from typing import Literal
from urllib.parse import urlsplit

from streamer.config.fields import (Bool, Float, Int, ListOf, Maybe, NonEmpty, OptPath, OptText,
                                    Path, Slug, Str, Text, after, field_error, section)

DAY_S = 86400.0


SOURCE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "file")


def _source_uri(v: str) -> str:
    # The same rules as media/sources.open_source, checked at load so a typo in a site file's
    # camera is named with its key before any camera starts.
    if "://" not in v:
        return v  # a file, a folder or a webcam index
    scheme = v.split("://", 1)[0].lower()
    if scheme not in SOURCE_SCHEMES:
        raise ValueError(f"unsupported scheme {scheme[:20]!r} (use rtsp, rtmp, http or https, a "
                         "file, a folder or a webcam index)")
    if scheme != "file":
        try:
            host = urlsplit(v).hostname
        except ValueError:
            host = None
        if not host:
            raise ValueError(f"the {scheme} URL has no host")
    return v


def _iso_time(v: str) -> str:
    from datetime import datetime
    s = v.strip()
    try:
        datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise ValueError("expected an ISO 8601 time such as 2026-12-01T08:00:00Z") from None
    return s


@section("source")
class SourceConfig:
    uri: NonEmpty.then(_source_uri) = "0"  # webcam index, file, folder, rtsp://, http(s)://
    realtime: Bool = False  # pace a file at its own fps (drops like a camera when late)
    loop: Bool = False  # replay a file forever (soak tests)
    # when a file/folder was recorded (ISO 8601, no zone = UTC); None: creation_time, else mtime
    start_time: Maybe(Text.then(_iso_time)) = None
    queue_size: Int(1, 1024) = 4  # frames between capture and inference
    # FFmpeg decoder threads; 0 = auto: one up to 1080p (inference has the other cores), else FFmpeg's
    decoder_threads: Int(0, 64) = 0
    folder_fps: Float(0.1, 1000) = 10.0  # pace of a folder of images played as a stream (with realtime)
    max_frame_age_s: Float(0.01, 3600) = 1.0  # live frames older than this at processing are dropped
    open_timeout_s: Float(0.1, 600) = 10.0
    read_timeout_s: Float(0.1, 600) = 5.0  # no frame for this long = source lost
    reconnect: Bool = True  # live sources only
    backoff_initial_s: Float(0.01, 600) = 0.5
    backoff_max_s: Float(0.01, 3600) = 30.0
    max_reconnects: Int(0, 10**9) = 0  # 0 = forever

    @after
    def _order(self):
        if self.backoff_max_s < self.backoff_initial_s:
            raise field_error("backoff_max_s", f"must be >= backoff_initial_s "
                              f"({self.backoff_initial_s:g}), got {self.backoff_max_s:g}")
        return self


@section("detector")
class DetectorConfig:
    kind: Literal["yunet", "centerface", "ssd_tf", "ssd_caffe"] = "yunet"  # streams
    # single images (web /analyze, batch): accuracy over speed (README "Detectors")
    image_kind: Literal["yunet", "centerface", "ssd_tf", "ssd_caffe"] = "centerface"
    # confident face on single images: CenterFace's scores run lower than YuNet's (best F1 on
    # face_mask_dev at 0.5: recall 0.82, precision 0.96; at 0.6: 0.72 / 0.98)
    image_score_threshold: Float(0, 1, gt=True, lt=True) = 0.5
    width: Int(64, 8192) = 640  # frames wider than this are downscaled for detection
    score_threshold: Float(0, 1, gt=True, lt=True) = 0.6
    nms_threshold: Float(0, 1, gt=True, lt=True) = 0.3
    low_score_threshold: Float(0, 1, gt=True, lt=True) = 0.3  # kept for the tracker's second pass
    min_face_px: Int(0, 4096) = 12  # smaller boxes (in full-frame pixels) are discarded
    interval: Int(1, 1000) = 1  # detect every N-th frame; the tracker's prediction carries boxes between
    motion_gate: Bool = False  # skip detection on still frames while no track is live

    @after
    def _order(self):
        if self.low_score_threshold > self.score_threshold:
            raise field_error("low_score_threshold", f"must be <= score_threshold "
                              f"({self.score_threshold:g}), got {self.low_score_threshold:g}")
        return self


@section("inference")
class InferenceConfig:
    backend: Literal["auto", "openvino", "opencv", "onnxruntime"] = "auto"  # auto: the measured fastest here (run.py models --tune), else OpenVINO
    threads: Int(0, 256) = 0  # per process; 0 = a stream: every core but one, else every core
    cache_dir: OptPath = None  # OpenVINO compiled-model cache (default ~/.cache/streamer/openvino)


@section("tracker")
class TrackerConfig:
    min_hits: Int(1, 1000) = 3
    max_misses: Int(1, 10000) = 15
    iou_threshold: Float(0, 1, gt=True, lt=True) = 0.25
    scene_cut_threshold: Float(0, 1) = 0.3  # 0..1: min of colour and structure change; 0 disables


@section("attributes")
class AttributesConfig:
    enabled: Bool = True
    model_set: Literal["dlib", "levi_hassner"] = "dlib"  # CC0 ONNX nets | user-supplied Caffe
    reclassify_every: Int(1, 100000) = 15  # frames between re-classifications of a track
    better_view_ratio: Float(1, 100) = 1.25  # quality gain that triggers an early re-classification
    min_face_px: Int(8, 4096) = 36  # faces narrower than this are not judged
    min_sharpness: Float(0, 1e6) = 15.0  # variance of Laplacian on the chip; below = too blurred
    flip_average: Bool = True  # average each chip with its mirror image
    max_per_frame: Int(1, 1024) = 16  # cap on faces classified in one frame (bounds worst-case cost)
    age_calibration: Bool = True  # map the net's age through the dev-fitted monotone map (calibration.json)


@section("events")
class EventsConfig:
    jsonl: OptPath = None  # path of the JSONL event log
    stdout: Bool = False  # print events as JSON lines on stdout
    update_min_interval_s: Float(0, DAY_S) = 1.0  # at most one `update` per track per interval
    age_change_years: Float(0, 150, gt=True) = 5.0  # an age change this large is "material"


@section("output")
class OutputConfig:
    display: Bool = False  # live OpenCV window (q / Esc quits)
    video: OptPath = None  # annotated mp4
    max_frames: Int(0, 10**12) = 0  # 0 = until the source ends


def _mqtt_url(v: str) -> str:
    try:
        u = urlsplit(v)
        port = u.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise ValueError("not a valid URL (bad port); expected mqtt://host:port or "
                         "mqtts://host:port") from None
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError("expected mqtt://host:port or mqtts://host:port")
    del port
    return v


def _topic_level(v: str) -> str:
    if not v or any(c in v for c in "+#") or v.startswith("/") or v.endswith("/"):
        raise ValueError("expected an MQTT topic prefix without + or # and no leading or "
                         "trailing /")
    return v


@section("mqtt")
class MqttConfig:
    enabled: Bool = False
    url: Text.then(_mqtt_url) = "mqtt://127.0.0.1:1883"  # mqtt:// or mqtts://
    username: OptText = None
    password: OptText = None
    client_id: OptText = None
    topic_prefix: Text.then(_topic_level) = "streamer"
    qos: Literal[0, 1, 2] = 1
    ca_file: OptPath = None
    cert_file: OptPath = None
    key_file: OptPath = None
    keepalive_s: Int(5, 3600) = 30
    spool_dir: Path = "spool"
    spool_max_events: Int(1, 10**8) = 100000
    fsync: Literal["always", "batch", "never"] = "batch"  # -> SQLite PRAGMA synchronous FULL | NORMAL | OFF
    discovery: Bool = False  # Home Assistant MQTT discovery (streamer/sinks/ha_discovery.py)
    discovery_prefix: Text.then(_topic_level) = "homeassistant"


Coord = Float(-1e6, 1e6)
XY = ListOf(Coord, 2, 2)


def _two_points(v: list) -> list:
    if len(v) != 2:
        raise ValueError("expected two points [[x1, y1], [x2, y2]]")
    return v


def _polygon(v: list) -> list:
    if not 3 <= len(v) <= 256:
        raise ValueError("expected a polygon of 3 to 256 [x, y] points")
    return v


@section("counting.lines[]")
class LineConfig:
    name: Str(1, 64) = "line"
    points: ListOf(XY).then(_two_points) = field(default_factory=list)  # fractions if all <= 1


@section("counting.zones[]")
class ZoneConfig:
    name: Str(1, 64) = "zone"
    points: ListOf(XY).then(_polygon) = field(default_factory=list)  # polygon


_RESET = re.compile(r"^daily@([01]\d|2[0-3]):[0-5]\d$")


def _reset(v: str) -> str:
    # Checked even when no line or zone is configured: a typo waits for the day counting is on.
    if v != "never" and not _RESET.match(v):
        raise ValueError("expected never or daily@HH:MM (00:00-23:59)")
    return v


def _increasing(v: list) -> list:
    if list(v) != sorted(v) or len(set(v)) != len(v):
        raise ValueError("expected a strictly increasing list of ages")
    return v


@section("counting")
class CountingConfig:
    lines: ListOf(LineConfig, max_len=64) = field(default_factory=list)
    zones: ListOf(ZoneConfig, max_len=64) = field(default_factory=list)
    anchor: Literal["center", "bottom"] = "center"  # point of the box that crosses
    hysteresis: Float(0, 0.5, lt=True) = 0.02  # fraction of frame diagonal to clear past a line
    summary_interval_s: Float(0, DAY_S) = 60.0  # 0 disables periodic summaries
    age_bins: ListOf(Float(0, 150), 1, 32).then(_increasing) = field(
        default_factory=lambda: [13, 18, 25, 35, 45, 55, 65])
    reset: Text.then(_reset) = "daily@00:00"  # daily@HH:MM (local) | never
    state_dir: Path = "state"


@section("web")
class WebConfig:
    host: NonEmpty = "127.0.0.1"
    port: Int(1, 65535) = 8080
    token: OptText = None  # when set, Authorization: Bearer <token> on every API route
    max_body_mb: Float(0, 1024, gt=True) = 20.0
    max_side: Int(64, 100_000) = 5000  # larger images are downscaled (as the seed did)
    max_pixels: Int(64 * 64, 10**10) = 100_000_000  # decompression-bomb guard (width x height)
    jpeg_quality: Int(1, 100) = 85
    workers: Int(0, 32) = 0  # analyzer threads (OpenVINO: one shared copy of the nets); 0 = min(2, cores)


@section("batch")
class BatchConfig:
    workers: Int(0, 256) = 0  # 0 = one per core
    conf: Float(0, 1, gt=True, lt=True) = 0.5
    recursive: Bool = False
    annotate: Bool = True


@section("")
class Config:
    camera: Slug = "camera"  # name in events, MQTT topics and spool/state file names
    models_dir: OptPath = None  # default: <project>/models
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    counting: CountingConfig = field(default_factory=CountingConfig)
    web: WebConfig = field(default_factory=WebConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)


SECTIONS = {f: t for f, t in Config.__annotations__.items() if hasattr(t, "__config_section__")}
