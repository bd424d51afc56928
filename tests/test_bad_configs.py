"""The malformed config files a new user writes (issue 11), each refused with one line that
names the key: through ``config.load`` for all of them, with a file source and with an RTSP
source, and through the real CLI (``run.py --config F --source S`` in a subprocess) for a
representative subset. None may print a traceback or hang (pytest-timeout bounds each case;
the alias bombs would take minutes and gigabytes if expanded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamer import config
from streamer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RTSP = "rtsp://127.0.0.1:9/none"  # nothing listens: the config must be refused before opening
FILE = "clip.mp4"


def bomb(levels: int = 9, width: int = 9) -> tuple[list[str], str]:
    """A "billion laughs" value: ``width ** levels`` strings after alias expansion. Returns the
    anchored items (``&a0 "lol"``, ``&a1 [*a0, ...]``, ...) and the reference to the top one."""
    items = ['&a0 "lol"']
    for i in range(1, levels + 1):
        items.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return items, f"*a{levels}"


def with_bomb(path: str) -> str:
    """A document whose key ``path`` (dotted) holds the bomb; its anchors are defined inside
    the value itself, so the only key in the file is the target."""
    items, ref = bomb()
    parts = path.split(".")
    doc = "".join("  " * d + f"{p}:\n" for d, p in enumerate(parts[:-1]))
    return doc + "  " * (len(parts) - 1) + f"{parts[-1]}: [" + ", ".join(items + [ref]) + "]\n"


# (id, file content (str or bytes), the key (or text) the one error line must start with/contain)
CASES = [
    # wrong types
    ("queue_size_word", "source: {queue_size: four}\n", "source.queue_size:"),
    ("bool_as_string", "source: {realtime: 'yes'}\n", "source.realtime:"),
    ("camera_number", "camera: 42\n", "camera:"),
    ("int_as_float", "detector: {width: 640.5}\n", "detector.width:"),
    ("int_as_bool", "tracker: {min_hits: true}\n", "tracker.min_hits:"),
    ("bool_as_int", "attributes: {enabled: 1}\n", "attributes.enabled:"),
    ("lines_as_mapping", "counting: {lines: {door: [[0, 0], [1, 1]]}}\n", "counting.lines:"),
    ("line_not_mapping", "counting: {lines: [[[0, 0], [1, 1]]]}\n", "counting.lines[0]:"),
    ("age_bins_string", "counting: {age_bins: '13,18'}\n", "counting.age_bins:"),
    ("path_as_number", "events: {jsonl: 5}\n", "events.jsonl:"),
    ("password_as_list", "mqtt: {password: [hunter2]}\n", "mqtt.password:"),
    ("float_as_string_1e308", "source: {open_timeout_s: 1e308}\n", "source.open_timeout_s:"),
    # unknown keys
    ("unknown_top", "detecter: {kind: yunet}\n", "detecter: unknown key"),
    ("unknown_nested", "detector: {treshold: 0.5}\n", "detector.treshold: unknown key"),
    ("unknown_in_list_item",
     "counting: {lines: [{name: d, points: [[0, 0], [1, 1]], colour: red}]}\n",
     "counting.lines[0].colour: unknown key"),
    ("integer_key", "1: x\n", "1: unknown key"),
    # numbers out of bounds
    ("negative", "tracker: {max_misses: -3}\n", "tracker.max_misses:"),
    ("zero_queue", "source: {queue_size: 0}\n", "source.queue_size:"),
    ("huge_queue", "source: {queue_size: 100000000}\n", "source.queue_size:"),
    ("nan", "detector: {score_threshold: .nan}\n", "detector.score_threshold:"),
    ("inf_read_timeout", "source: {read_timeout_s: .inf}\n", "source.read_timeout_s:"),
    ("minus_inf", "events: {update_min_interval_s: -.inf}\n", "events.update_min_interval_s:"),
    ("open_timeout_1e308", "source: {open_timeout_s: 1.0e+308}\n", "source.open_timeout_s:"),
    ("open_timeout_inf", "source: {open_timeout_s: .inf}\n", "source.open_timeout_s:"),
    ("read_timeout_1e-9", "source: {read_timeout_s: 1.0e-9}\n", "source.read_timeout_s:"),
    ("web_workers_100000", "web: {workers: 100000}\n", "web.workers:"),
    ("web_port_zero", "web: {port: 0}\n", "web.port:"),
    ("body_zero", "web: {max_body_mb: 0}\n", "web.max_body_mb:"),
    ("conf_one", "batch: {conf: 1}\n", "batch.conf:"),
    ("reconnects_negative", "source: {max_reconnects: -1}\n", "source.max_reconnects:"),
    ("hysteresis_half", "counting: {hysteresis: 0.5}\n", "counting.hysteresis:"),
    ("low_above_score", "detector: {score_threshold: 0.4, low_score_threshold: 0.5}\n",
     "detector.low_score_threshold:"),
    ("backoff_order", "source: {backoff_initial_s: 5, backoff_max_s: 1}\n", "source.backoff_max_s:"),
    # choices and formats
    ("detector_kind", "detector: {kind: hog}\n", "detector.kind:"),
    ("log_level", "log_level: verbose\n", "log_level:"),
    ("reset_25_99_counting_off", "counting: {reset: 'daily@25:99'}\n", "counting.reset:"),
    ("reset_weekly", "counting: {reset: weekly}\n", "counting.reset:"),
    ("mqtt_http", "mqtt: {url: 'http://broker:1883'}\n", "mqtt.url:"),
    ("mqtt_bad_port", "mqtt: {url: 'mqtt://broker:99999'}\n", "mqtt.url:"),
    ("mqtt_qos", "mqtt: {qos: 3}\n", "mqtt.qos:"),
    ("mqtt_fsync", "mqtt: {fsync: sometimes}\n", "mqtt.fsync:"),
    ("mqtt_topic_wildcard", "mqtt: {topic_prefix: 'a/#'}\n", "mqtt.topic_prefix:"),
    ("zone_two_points", "counting: {zones: [{name: z, points: [[0, 0], [1, 1]]}]}\n",
     "counting.zones[0].points:"),
    ("point_three_coords", "counting: {lines: [{points: [[0, 0, 0], [1, 1]]}]}\n",
     "counting.lines[0].points[0]:"),
    ("age_bins_decreasing", "counting: {age_bins: [30, 20]}\n", "counting.age_bins:"),
    ("empty_path", "models_dir: ''\n", "models_dir:"),
    ("newline_in_path", 'events: {jsonl: "a\\nb.jsonl"}\n', "events.jsonl:"),
    # camera names end up in file names and MQTT topics
    ("camera_dotdot", "camera: '..'\n", "camera:"),
    ("camera_slash", "camera: a/b\n", "camera:"),
    ("camera_hash", "camera: 'door#1'\n", "camera:"),
    ("camera_empty", "camera: ''\n", "camera:"),
    ("camera_long", f"camera: {'c' * 65}\n", "camera:"),
    ("camera_nul_escape", 'camera: "a\\0b"\n', "camera:"),
    # structure
    ("list_top", "- a\n- b\n", "expected a mapping at the top level"),
    ("scalar_top", "just a sentence\n", "expected a mapping at the top level"),
    ("section_list", "source: [uri, x]\n", "source:"),
    ("section_scalar", "detector: yunet\n", "detector:"),
    ("duplicate_key", "camera: a\ncamera: b\n", "duplicate key 'camera'"),
    ("unclosed", "camera: [unclosed\n", "not valid YAML"),
    ("python_tag", "!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ("tabs", "source:\n\turi: x\n", "not valid YAML"),
    # bytes and bombs
    ("non_utf8", b"camera: caf\xe9\n", "not UTF-8"),
    ("raw_nul_byte", b"camera: a\x00b\n", "not valid YAML"),
    ("huge_file", "# " + "x" * (1 << 20) + "\n", "larger than"),
    ("deep_nesting", "a: " + "[" * 50000 + "]" * 50000 + "\n", "config file"),
    ("alias_bomb_camera", with_bomb("camera"), "camera:"),
    ("alias_bomb_mqtt_url", with_bomb("mqtt.url"), "mqtt.url:"),
    ("recursive_alias", "counting: {age_bins: &x [1, *x]}\n", "counting.age_bins:"),
]
IDS = [c[0] for c in CASES]

# Cases also run through the real CLI (one subprocess each, with each source).
CLI_SUBSET = ["queue_size_word", "unknown_nested", "inf_read_timeout", "open_timeout_1e308",
              "read_timeout_1e-9", "web_workers_100000", "reset_25_99_counting_off",
              "camera_dotdot", "camera_nul_escape", "non_utf8", "alias_bomb_camera",
              "alias_bomb_mqtt_url", "list_top", "mqtt_http"]


def write(tmp_path: Path, content) -> Path:
    f = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    return f


def assert_one_line(msg: str, needle: str) -> None:
    assert "\n" not in msg, msg
    assert len(msg) < 400, f"message too long ({len(msg)} chars): {msg[:200]}..."
    assert msg.startswith(needle) or needle in msg, msg
    assert "hunter2" not in msg, msg
    assert "lol" not in msg, msg  # the bomb's value is never formatted


@pytest.mark.timeout(10)
@pytest.mark.parametrize("source", [FILE, RTSP], ids=["file", "rtsp"])
@pytest.mark.parametrize("name, content, needle", CASES, ids=IDS)
def test_load_refuses_with_one_line_naming_the_key(tmp_path, name, content, needle, source):
    f = write(tmp_path, content)
    with pytest.raises(ConfigError) as e:
        config.load(f, {"source.uri": source})
    assert_one_line(str(e.value), needle)


def test_there_are_at_least_53_kinds():
    assert len(CASES) >= 53 and len(set(IDS)) == len(IDS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("source", [FILE, RTSP], ids=["file", "rtsp"])
@pytest.mark.parametrize("name", CLI_SUBSET)
def test_cli_prints_one_error_line_and_exits_1(tmp_path, name, source):
    _, content, needle = CASES[IDS.index(name)]
    f = write(tmp_path, content)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(f), "--source", source],
                       capture_output=True, timeout=45, cwd=ROOT, env=dict(os.environ))
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert_one_line(lines[0][len("error: "):], needle)
    assert r.stdout == b""


def test_empty_file_means_every_default(tmp_path):
    # Every key is optional: an empty file (or only comments) is the default config.
    for text in ("", "# nothing yet\n", "---\n"):
        assert config.load(write(tmp_path, text)) == config.Config()


def test_bomb_helper_really_is_a_bomb():
    # The guard above is only meaningful if the document expands hugely: count without expanding.
    anchors, _ = bomb()
    assert len(anchors) == 10 and 9 ** 9 > 10 ** 8
    assert with_bomb("mqtt.url").startswith("mqtt:\n  url: [")


def test_a_small_shared_anchor_is_fine(tmp_path):
    # Aliases themselves are legitimate YAML: reusing one line definition is not a bomb.
    f = write(tmp_path, "counting:\n  lines:\n    - &door {name: door, points: [[0.5, 0], [0.5, 1]]}\n"
                        "  zones: []\n")
    c = config.load(f)
    assert c.counting.lines[0].name == "door"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("uri, needle", [
    ("ftp://example.com/x.mp4", "unsupported scheme 'ftp'"),
    ("rtsp:///nohost", "the rtsp URL has no host"),
    ("rtsp://admin:hunter2@/x", "has no host"),  # the password is masked in the message
    ("http://", "the http URL has no host"),
])
def test_bad_source_urls_are_refused_at_load_naming_the_key(tmp_path, uri, needle):
    f = write(tmp_path, f"source: {{uri: '{uri}'}}\n")
    with pytest.raises(ConfigError) as e:
        config.load(f)
    assert_one_line(str(e.value), "source.uri:")
    assert needle in str(e.value)
    site = write(tmp_path, f"cameras:\n  door:\n    source: {{uri: '{uri}'}}\n")
    with pytest.raises(ConfigError) as e:
        config.load_site(site)
    assert_one_line(str(e.value), "cameras.door.source.uri:")
