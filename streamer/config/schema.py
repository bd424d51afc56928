"""JSON Schema of the config files, generated from the models (as Frigate publishes its own):
editors (VS Code's YAML extension, ``# yaml-language-server: $schema=...``) then complete keys,
show defaults and bounds, and flag typos while the file is written.

``schema/config.schema.json`` (one camera) and ``schema/site.schema.json`` (``cameras:``) are
committed; tests/test_config.py fails when they are stale. Regenerate with
``python run.py config-schema --write``. The models stay the authority: a few rules are not
expressible here (the camera-name pattern is, cross-field orders like backoff_max_s >=
backoff_initial_s are not).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

from streamer.config.fields import SLUG_RE, section_schema
from streamer.config.sections import Config
from streamer.config.site import LogConfig, PrivacyConfig, SITE_WIDE, StoreConfig

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "schema"
PATHS = {"config": SCHEMA_DIR / "config.schema.json", "site": SCHEMA_DIR / "site.schema.json"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"


DEFAULT_YAML = SCHEMA_DIR.parent / "config" / "default.yaml"
_LINE = re.compile(r"^(?P<indent> *)(?P<key>[a-z_]+):(?P<value>[^#]*)(?:#\s*(?P<doc>.*))?$")


def key_docs(path: Path = DEFAULT_YAML) -> dict[str, str]:
    """``{"source.uri": "webcam index, ..."}`` from the comments of config/default.yaml, the
    documented file: one place says what a key means (schema descriptions, README table)."""
    docs: dict[str, str] = {}
    section = ""
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        key, doc = m["key"], (m["doc"] or "").strip()
        if not m["indent"]:
            section = key if not m["value"].strip() else ""
            full = key
        else:
            full = f"{section}.{key}" if section else key
        if doc:
            docs[full] = doc
    return docs


def _describe(schema: dict, docs: dict[str, str]) -> None:
    defs = schema.get("$defs", {})
    for name, prop in schema["properties"].items():
        if name in docs:
            prop["description"] = docs[name]
        ref = prop.get("$ref", "")
        if ref.startswith("#/$defs/"):
            for key, sub in defs[ref.split("/")[-1]]["properties"].items():
                if f"{name}.{key}" in docs:
                    sub["description"] = docs[f"{name}.{key}"]


def config_schema() -> dict:
    s = section_schema(Config)
    s["properties"]["camera"]["pattern"] = SLUG_RE.pattern
    _describe(s, key_docs())
    return {"$schema": DRAFT, "title": "streamer config (one camera)", **s}


def _bounds(p: dict) -> str:
    lo = p.get("minimum", p.get("exclusiveMinimum"))
    hi = p.get("maximum", p.get("exclusiveMaximum"))
    if "enum" in p:
        return " \\| ".join(str(v) for v in p["enum"])
    if lo is None and hi is None:
        return ""
    left = "(" if "exclusiveMinimum" in p else "["
    right = ")" if "exclusiveMaximum" in p else "]"
    return f"{left}{_num(lo)}, {_num(hi)}{right}"


def _num(v) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}".replace(",", "_") if abs(v) >= 100_000 else str(int(v))
    return f"{v:g}"


def _type(p: dict) -> dict:
    """The non-null branch of an Optional property."""
    for alt in p.get("anyOf", []):
        if alt.get("type") != "null":
            return {**alt, "default": p.get("default")}
    return p


def markdown_table() -> str:
    """The README "Configuration" table: every key, its default, bounds and meaning."""
    s = config_schema()
    rows = ["| key | default | bounds / choices | meaning |", "|---|---|---|---|"]
    defaults = dataclasses.asdict(Config())

    def row(key: str, p: dict) -> None:
        q = _type(p)
        value = defaults
        for part in key.split("."):
            value = value[part]
        default = json.dumps(value)
        if key == "camera":
            q = {**q, "enum": None}
            bounds = "1-64 of A-Z a-z 0-9 _ - . (not first)"
        else:
            bounds = _bounds(q)
        doc = (p.get("description") or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {bounds} | {doc} |")

    for name, prop in s["properties"].items():
        ref = prop.get("$ref", "")
        if ref.startswith("#/$defs/"):
            for key, sub in s["$defs"][ref.split("/")[-1]]["properties"].items():
                row(f"{name}.{key}", sub)
        else:
            row(name, prop)
    return "\n".join(rows) + "\n"


def site_schema() -> dict:
    one = section_schema(Config)
    defs = dict(one.pop("$defs", {}))
    for cls in (StoreConfig, LogConfig, PrivacyConfig):
        sub = section_schema(cls)
        defs.update(sub.pop("$defs", {}))
        defs[cls.__name__] = sub
    shared = {k: v for k, v in one["properties"].items() if k != "camera"}
    per_camera = {k: copy.deepcopy(v) for k, v in shared.items() if k not in SITE_WIDE}
    props = dict(shared)
    props.update({
        "store": {"$ref": "#/$defs/StoreConfig"},
        "log": {"$ref": "#/$defs/LogConfig"},
        "privacy": {"$ref": "#/$defs/PrivacyConfig"},
        "cameras": {
            "type": "object", "minProperties": 1, "maxProperties": 64,
            "description": "camera name -> overrides of the top-level (default) sections",
            "propertyNames": {"pattern": SLUG_RE.pattern},
            "additionalProperties": {"anyOf": [{"type": "null"}, {
                "type": "object", "additionalProperties": False, "properties": per_camera}]},
        },
    })
    return {"$schema": DRAFT, "title": "streamer site config (several cameras)", "type": "object",
            "additionalProperties": False, "required": ["cameras"], "properties": props,
            "$defs": defs}


def render(which: str) -> str:
    s = config_schema() if which == "config" else site_schema()
    return json.dumps(s, indent=2, sort_keys=True) + "\n"


README = SCHEMA_DIR.parent / "README.md"
TABLE_START, TABLE_END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def readme_with_table(text: str) -> str:
    """README text with the generated table between the markers of its Configuration section."""
    a, b = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[:a] + "\n" + markdown_table() + text[b:]


def write() -> list[Path]:
    """Regenerate the schema files and the README's Configuration table."""
    for which, path in PATHS.items():
        path.write_text(render(which))
    text = README.read_text()
    if TABLE_START in text:
        README.write_text(readme_with_table(text))
    return list(PATHS.values()) + [README]
