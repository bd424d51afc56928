"""What ``/api/status`` and ``/healthz`` say: the live pipeline's (single camera) or the
site's (every camera and its MQTT link) state, as plain dicts.

Ready means: models loaded and
- single camera: the pipeline runs, its source is connected, frames are recent (within
  ``source.read_timeout_s``; before the first frame, within open + read timeouts of the start)
  and no sink reports its link down (``SinkSet.health()``, when the pipeline offers it);
- site: ``SiteView.health()`` says all cameras and MQTT links are up; the body also lists every
  camera's status, source, last frame age, restarts and MQTT link, so a 503 explains itself.
"""

from __future__ import annotations

import time
from typing import Optional


def frame_age(p) -> Optional[float]:
    return None if p.last_frame_mono is None else round(time.monotonic() - p.last_frame_mono, 3)


def pipeline_running(p) -> bool:
    return p is not None and not p.stop_event.is_set()


def sink_health(p) -> tuple[list[str], dict]:
    """(reasons a sink is down, ``{sink: {"connected": bool, "backlog": n, ...}}``) from the
    pipeline's ``sinks.health()``; nothing when the pipeline's sinks do not offer it.

    Accepted forms of ``health()``: ``{name: {"connected": bool, ...}}`` or
    ``(ok, [reason, ...])`` (the SiteView form)."""
    fn = getattr(getattr(p, "sinks", None), "health", None)
    if not callable(fn):
        return [], {}
    h = fn()
    if isinstance(h, tuple):
        ok, reasons = h
        return ([] if ok else [str(r) for r in reasons] or ["a sink is down"]), {}
    links = {str(k): v for k, v in (h or {}).items() if isinstance(v, dict)}
    reasons = []
    for name, link in sorted(links.items()):
        if link.get("connected") is False:
            backlog = link.get("backlog")
            reasons.append(f"{name} disconnected" + (f", {backlog} events waiting in the spool"
                                                     if backlog is not None else ""))
    return reasons, links


def status_json(cfg, p, stream: bool) -> dict:
    if p is None:
        return {"pipeline": False, "camera": cfg.camera}
    s = p.stats
    return {"pipeline": True, "running": pipeline_running(p), "camera": cfg.camera,
            "source_up": bool(p.source_up), "fps": round(s.fps, 1), "faces": s.faces,
            "tracks": s.tracks, "counts": s.counts, "frames_in": p.frames_in,
            "frames_processed": p.frames_processed,
            "frames_dropped": p.frames_dropped,  # queue + stale (Pipeline.frames_dropped)
            "latency_ms": round(s.latency_ms, 1), "last_frame_age_s": frame_age(p),
            "stream": stream}


def health_json(cfg, models_loaded: bool, p=None, site=None) -> dict:
    body: dict = {"live": True, "models_loaded": models_loaded, "pipeline": p is not None,
                  "source_connected": None, "last_frame_age_s": None}
    reasons = [] if models_loaded else ["models not loaded"]
    if p is not None:
        _pipeline_health(cfg, p, body, reasons)
    if site is not None:
        _site_health(site, body, reasons)
    body["status"] = "not_ready" if reasons else "ready"
    body["reasons"] = reasons
    return body


def _pipeline_health(cfg, p, body: dict, reasons: list) -> None:
    src = cfg.source
    running = pipeline_running(p)
    body["source_connected"] = bool(p.source_up) and running
    age = frame_age(p)
    body["last_frame_age_s"] = age
    if not running:
        reasons.append("pipeline stopped")
    elif not p.source_up:
        reasons.append("source disconnected, reconnecting")
    if age is None:
        waited = time.monotonic() - p.started
        if waited > src.open_timeout_s + src.read_timeout_s:
            reasons.append(f"no frame processed {waited:.0f} s after start")
    elif age > src.read_timeout_s:
        reasons.append(f"last frame {age:.1f} s ago (> source.read_timeout_s)")
    sink_reasons, links = sink_health(p)
    reasons.extend(sink_reasons)
    if links:
        body["sinks"] = links


def _site_health(site, body: dict, reasons: list) -> None:
    cams = site.cameras()
    body["cameras"] = [{"name": c.name, "status": c.status, "source_connected": c.source_connected,
                        "last_frame_age_s": c.last_frame_age_s, "restarts": c.restarts,
                        "reason": c.reason, "mqtt": c.mqtt} for c in cams]
    body["source_connected"] = bool(cams) and all(c.source_connected for c in cams)
    ok, site_reasons = site.health()
    if not ok:
        reasons.extend(str(r) for r in site_reasons)
        if not site_reasons:
            reasons.append("the site reports a camera or MQTT link down")
