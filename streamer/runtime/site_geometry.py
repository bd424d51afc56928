"""The line and zone editor's save: validate, rewrite the site file atomically, keep a backup.

Contract: ``write_geometry(path, camera, lines, zones) -> SiteConfig`` (the reloaded site) or
``ConfigError`` with nothing changed on disk. The new geometry goes into
``cameras.<camera>.counting.lines`` / ``.zones`` (so it applies to that camera only, shadowing
any default lines); everything else in the file is kept as data. The file is rewritten by a
YAML round trip (``yaml.safe_dump``, key order kept): values survive, comments do not — the old
file, comments included, is kept as ``FILE.bak``.

Validation goes through the real loader: the candidate file is written beside the original
(same folder, so relative paths mean the same), loaded with ``load_site`` (every key and type,
named ``cameras.<camera>.counting.lines[0].points: ...``), then through the counter's geometry
check (two distinct points per line; a zone of at least 3 points with a non-zero area, so 3
collinear or repeated points are refused). Only then does the candidate replace the file
(``os.replace``: readers see the old or the new file, never half of one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from streamer.errors import ConfigError

MAX_ITEMS = 32  # lines or zones per camera from the editor
MAX_POINTS = 64


def _clean(items, kind: str, camera: str) -> list[dict]:
    key = f"cameras.{camera}.counting.{kind}"
    if not isinstance(items, list):
        raise ConfigError(f"{key}: expected a list, got {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise ConfigError(f"{key}: at most {MAX_ITEMS} {kind}, got {len(items)}")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or set(it) - {"name", "points"}:
            raise ConfigError(f"{key}[{i}]: expected {{name, points}}, got {str(it)[:80]}")
        pts = it.get("points")
        if not isinstance(pts, list) or len(pts) > MAX_POINTS:
            raise ConfigError(f"{key}[{i}].points: expected a list of at most {MAX_POINTS} [x, y]")
        clean_pts = []
        for p in pts:
            if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)):
                raise ConfigError(f"{key}[{i}].points: expected [x, y] numbers, got {str(p)[:40]}")
            clean_pts.append([float(v) if isinstance(v, float) else int(v) for v in p])
        if kind == "lines" and len(clean_pts) != 2:
            raise ConfigError(f"{key}[{i}].points: a line needs exactly 2 points, got {len(clean_pts)}")
        if kind == "zones" and len(clean_pts) < 3:
            raise ConfigError(f"{key}[{i}].points: a zone needs at least 3 points, got {len(clean_pts)}")
        out.append({"name": it.get("name"), "points": clean_pts})
    return out


def write_geometry(path: str | Path, camera: str, lines, zones):
    from streamer.config import load_site
    from streamer.core.geometry import check_geometry

    path = Path(path)
    lines, zones = _clean(lines, "lines", camera), _clean(zones, "zones", camera)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    cams = data.get("cameras")
    if not isinstance(cams, dict) or camera not in cams:
        raise KeyError(camera)
    over = cams[camera] if isinstance(cams[camera], dict) else {}
    counting = over.get("counting") if isinstance(over.get("counting"), dict) else {}
    counting = dict(counting, lines=lines, zones=zones)
    cams[camera] = dict(over, counting=counting)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        site = load_site(tmp)
        try:
            check_geometry(site.cameras[camera].counting)
        except ConfigError as e:
            raise ConfigError(f"cameras.{camera}.{e}") from None
        shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return load_site(path)
