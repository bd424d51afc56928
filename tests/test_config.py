import pytest

from streamer import config
from streamer.errors import ConfigError


def test_default_file_loads_and_matches_dataclass_defaults():
    # The documented default.yaml and the dataclass defaults must tell the same story.
    assert config.load() == config.Config()


@pytest.mark.parametrize("overrides, key", [
    ({"tracker.max_misses": -3}, "tracker.max_misses"),
    ({"tracker.bogus": 1}, "tracker.bogus"),
    ({"bogus": 1}, "bogus"),
    ({"detector.kind": "hog"}, "detector.kind"),
    ({"detector.score_threshold": 1.5}, "detector.score_threshold"),
    ({"source.queue_size": "four"}, "source.queue_size"),
    ({"source.realtime": "yes"}, "source.realtime"),
    ({"mqtt.url": "http://broker"}, "mqtt.url"),
    ({"mqtt.qos": 3}, "mqtt.qos"),
    ({"counting.reset": "weekly"}, "counting.reset"),
    ({"web.port": 70000}, "web.port"),
    ({"camera": "a/b"}, "camera"),
    ({"attributes.model_set": "caffe"}, "attributes.model_set"),
])
def test_bad_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        config.load(None, overrides)
    msg = str(e.value)
    assert msg.startswith(key + ":"), msg
    assert "\n" not in msg


def test_list_items_are_validated_with_their_index():
    with pytest.raises(ConfigError, match=r"counting.lines\[0\].points"):
        config.from_dict({"counting": {"lines": [{"name": "door", "points": [[0, 0]]}]}})
    with pytest.raises(ConfigError, match=r"counting.lines\[1\].colour: unknown key"):
        config.from_dict({"counting": {"lines": [{"points": [[0, 0], [1, 1]]},
                                                 {"points": [[0, 0], [1, 1]], "colour": 1}]}})


def test_int_accepted_for_float_and_overrides_apply(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("camera: door\nsource: {max_frame_age_s: 2}\n")
    c = config.load(f, {"output.max_frames": 5, "source.uri": "clip.mp4"})
    assert c.camera == "door" and c.source.max_frame_age_s == 2.0
    assert isinstance(c.source.max_frame_age_s, float)
    assert c.output.max_frames == 5 and c.source.uri == "clip.mp4"


@pytest.mark.parametrize("text, needle", [
    ("camera: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("source: 3\n", "source: expected a mapping"),
    ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),  # safe_load only
])
def test_bad_files(tmp_path, text, needle):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        config.load(f)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("/nonexistent/streamer.yaml")


# ---- the models behave as stdlib dataclasses, and validate on every construction ----------

def test_replace_and_positional_construction_validate():
    import dataclasses

    c = config.load()
    d = dataclasses.replace(c, detector=dataclasses.replace(c.detector, min_face_px=0))
    assert d.detector.min_face_px == 0 and c.detector.min_face_px == 12  # frozen: a copy
    assert config.LineConfig("door", [[0.5, 0], [0.5, 1]]).points == [[0.5, 0], [0.5, 1]]
    with pytest.raises(ConfigError, match=r"^tracker.min_hits: expected an integer >= 1"):
        dataclasses.replace(c.tracker, min_hits=0)
    with pytest.raises(ConfigError, match=r"points"):
        config.LineConfig("door", [[0, 0]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.camera = "x"
    assert {f.name for f in dataclasses.fields(c)} >= {"camera", "source", "detector"}
    assert dataclasses.asdict(c)["source"]["uri"] == "0"


# ---- relative paths: relative to the config file's folder ----------------------------------

def test_relative_paths_in_a_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    site = tmp_path / "etc"
    site.mkdir()
    f = site / "door.yaml"
    f.write_text("events: {jsonl: out/events.jsonl}\nmqtt: {spool_dir: /abs/spool}\n"
                 "counting: {state_dir: st}\n")
    monkeypatch.chdir(tmp_path)
    c = config.load(f, {"output.video": "flag.mp4"})
    assert c.events.jsonl == str(site / "out" / "events.jsonl")
    assert c.counting.state_dir == str(site / "st")
    assert c.mqtt.spool_dir == "/abs/spool"  # absolute stays
    assert c.output.video == "flag.mp4"  # a flag is relative to the working directory
    assert config.load(site / "door.yaml").mqtt.spool_dir == "/abs/spool"
    assert config.load(None).mqtt.spool_dir == "spool"  # default file: defaults, as given


# ---- site config (issue 15) ----------------------------------------------------------------

SITE = """
detector: {score_threshold: 0.7}
events: {jsonl: events.jsonl}
counting: {reset: never, lines: [{name: door, points: [[0.5, 0], [0.5, 1]]}]}
store: {path: data/events.sqlite, retention_days: 7}
log: {file: logs/site.log, rotate: hourly, keep: 48}
privacy: {keep_crops: false}
web: {port: 8090}
cameras:
  door:
    source: {uri: "rtsp://cam1/stream"}
  desk:
    source: {uri: "rtsp://cam2/stream", read_timeout_s: 8}
    detector: {score_threshold: 0.8}
    counting: {lines: []}
"""


def test_site_merges_defaults_into_every_camera(tmp_path):
    f = tmp_path / "site.yaml"
    f.write_text(SITE)
    s = config.load_site(f)
    assert s.names == ["door", "desk"]
    door, desk = s.cameras["door"], s.cameras["desk"]
    assert (door.camera, desk.camera) == ("door", "desk")
    assert door.detector.score_threshold == 0.7 and desk.detector.score_threshold == 0.8
    assert desk.detector.nms_threshold == door.detector.nms_threshold == 0.3  # deep merge
    assert desk.source.read_timeout_s == 8.0 and door.source.read_timeout_s == 5.0
    assert desk.source.uri == "rtsp://cam2/stream" and desk.counting.reset == "never"
    assert [ln.name for ln in door.counting.lines] == ["door"] and desk.counting.lines == []
    assert door.events.jsonl == str(tmp_path / "events.jsonl")
    assert s.store.path == str(tmp_path / "data" / "events.sqlite") and s.store.retention_days == 7
    assert s.log.file == str(tmp_path / "logs" / "site.log") and s.log.rotate == "hourly"
    assert s.privacy.keep_crops is False and s.web.port == 8090


@pytest.mark.parametrize("edit, key", [
    ("  desk:\n    detector: {score_threshold: 3}\n", "cameras.desk.detector.score_threshold:"),
    ("  desk:\n    detector: {treshold: 3}\n", "cameras.desk.detector.treshold: unknown key"),
    ("  desk:\n    web: {port: 1}\n", "cameras.desk.web: site-wide"),
    ("  desk:\n    camera: other\n", "cameras.desk.camera:"),
    ("  '..':\n    source: {uri: x}\n", "cameras.'..':"),
    ("  a/b: {}\n", "cameras.'a/b':"),
    ("  desk: [1]\n", "cameras.desk: expected a mapping"),
])
def test_site_errors_name_the_camera_and_key(tmp_path, edit, key):
    f = tmp_path / "site.yaml"
    f.write_text("cameras:\n  door: {}\n" + edit)
    with pytest.raises(ConfigError) as e:
        config.load_site(f)
    assert str(e.value).startswith(key), str(e.value)


@pytest.mark.parametrize("text, key", [
    ("detector: {score_threshold: 3}\ncameras: {door: {}}\n", "detector.score_threshold:"),
    ("store: {retention_days: 0}\ncameras: {door: {}}\n", "store.retention_days:"),
    ("log: {rotate: weekly}\ncameras: {door: {}}\n", "log.rotate:"),
    ("privacy: {keep_crops: 'no'}\ncameras: {door: {}}\n", "privacy.keep_crops:"),
    ("cameras: {}\n", "cameras: expected a mapping"),
    ("camera: x\ncameras: {door: {}}\n", "camera: a site config"),
    ("detector: {}\n", "config file"),
])
def test_site_errors_in_shared_sections(tmp_path, text, key):
    f = tmp_path / "site.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load_site(f)
    assert str(e.value).startswith(key), str(e.value)


def test_plain_load_refuses_a_site_file_with_a_pointer(tmp_path):
    f = tmp_path / "site.yaml"
    f.write_text(SITE)
    with pytest.raises(ConfigError, match="^cameras: this is a site config"):
        config.load(f)


# ---- JSON schema and README table, generated from the models --------------------------------

FIX = "stale: run `python run.py config-schema --write` and commit the result"


def test_schema_files_and_readme_table_are_fresh():
    from streamer.config import schema

    for which, path in schema.PATHS.items():
        assert path.read_text() == schema.render(which), f"{path.name} {FIX}"
    readme = schema.README.read_text()
    assert readme == schema.readme_with_table(readme), f"README Configuration table {FIX}"


def test_schema_accepts_the_default_file_and_refuses_what_the_models_refuse(tmp_path):
    import json

    import jsonschema
    import yaml

    from streamer.config import schema

    one = json.loads(schema.PATHS["config"].read_text())
    jsonschema.validate(yaml.safe_load(config.DEFAULT_PATH.read_text()), one)
    for bad in ({"web": {"workers": 100000}}, {"camera": ".."}, {"detector": {"treshold": 1}},
                {"source": {"read_timeout_s": 1e-9}}, {"mqtt": {"qos": 3}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, one)
        with pytest.raises(ConfigError):
            config.from_dict(bad)
    site = json.loads(schema.PATHS["site"].read_text())
    ok = {"detector": {"score_threshold": 0.7}, "store": {"retention_days": 7},
          "cameras": {"door": {"source": {"uri": "rtsp://cam/x"}}, "desk": None}}
    jsonschema.validate(ok, site)
    for bad in ({"cameras": {"../x": {}}}, {"cameras": {"door": {"web": {"port": 1}}}},
                {"detector": {}}, {"cameras": {"door": {"detector": {"score_threshold": 2}}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, site)


def test_readme_table_lists_every_key_with_its_default():
    import dataclasses

    from streamer.config import schema

    table = schema.markdown_table()
    c = config.Config()
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        keys = [f"{f.name}.{g.name}" for g in dataclasses.fields(value)] \
            if dataclasses.is_dataclass(value) else [f.name]
        for k in keys:
            assert f"| `{k}` |" in table, k
    assert "| `web.workers` | `0` | [0, 32] |" in table


def test_rules_are_strict_where_a_coercion_would_hide_a_mistake():
    with pytest.raises(ConfigError, match=r"^mqtt.qos: expected 0, 1 or 2, got True$"):
        config.from_dict({"mqtt": {"qos": True}})
    with pytest.raises(ConfigError, match=r"^tracker: too many positional values$"):
        config.TrackerConfig(3, 15, 0.25, 0.3, 9)
    with pytest.raises(ConfigError, match=r"^source\.1: unknown key \(known: uri, "):
        config.from_dict({"source": {1: "x"}})
    with pytest.raises(ConfigError, match=r"^counting.age_bins: expected a strictly increasing "
                                          r"list of ages, got \[18, 13\]$"):  # as written, not 18.0
        config.from_dict({"counting": {"age_bins": [18, 13]}})
    with pytest.raises(ConfigError, match=r"^web.token: expected a string, got <hidden>$"):
        config.from_dict({"web": {"token": 12345}})


def test_nested_sections_accept_built_instances_and_replace_revalidates():
    c = config.Config(source=config.SourceConfig(queue_size=9), tracker={"min_hits": 2})
    assert c.source.queue_size == 9 and c.tracker.min_hits == 2
    assert isinstance(c.tracker, config.TrackerConfig)
    with pytest.raises(ConfigError, match=r"^source.queue_size: expected an integer >= 1"):
        config.replace(c, source={"queue_size": 0})
