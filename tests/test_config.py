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
