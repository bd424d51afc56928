"""Prometheus metrics for ``/metrics``: the pipeline's (or every site camera's) counters read
at scrape time, each with a ``camera`` label, the MQTT link and spool depth, plus the web
path's own request counters.

Contract: ``WebMetrics(pipeline=None)`` owns a private ``CollectorRegistry`` (never the global
one, so several apps can live in one process, as tests need); ``render() -> (bytes, content
type)`` is the scrape. The pipeline is never told about Prometheus: ``PipelineCollector``
reads its plain attributes when scraped, so a pipeline without a web server pays nothing.
Counters of a pipeline are reported as Prometheus counters because they only grow for the
life of the process (a restart resets them, which Prometheus' ``rate()`` handles).
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

# Upper bounds (ms) of the end-to-end latency buckets; the pipeline keeps 1 ms bins, so any
# bound is exact.
LATENCY_BUCKETS_MS = (10, 25, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000)
ANALYZE_BUCKETS_S = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


def histogram_buckets(counts: np.ndarray, bounds_ms: Iterable[int]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (in seconds) from 1 ms bins (bin i holds [i, i+1) ms,
    the last bin holds everything beyond)."""
    counts = np.asarray(counts).copy()  # the inference thread keeps adding while we read
    cum = np.cumsum(counts)
    total = int(cum[-1]) if len(cum) else 0
    out = []
    for b in bounds_ms:
        # values < b ms fall in bins 0..b-1, so the count <= b ms is cum[b-1]
        n = int(cum[min(b, len(cum)) - 1]) if b > 0 else 0
        out.append((_fmt_le(b / 1000.0), float(n)))
    out.append(("+Inf", float(total)))
    return out


def _fmt_le(v: float) -> str:
    return repr(float(v))


class PipelineCollector(Collector):
    """Reads a ``Pipeline``'s counters at scrape time (no bookkeeping inside the pipeline)."""

    def __init__(self, pipeline, camera: str):
        self.pipeline = pipeline
        self.camera = camera

    def describe(self):
        return []  # no describe-time samples: collect() must not run at registration

    def collect(self):
        p = self.pipeline
        cam = [self.camera]
        stats = p.stats

        def counter(name, doc, value):
            m = CounterMetricFamily(name, doc, labels=["camera"])
            m.add_metric(cam, float(value))
            return m

        def gauge(name, doc, value):
            m = GaugeMetricFamily(name, doc, labels=["camera"])
            m.add_metric(cam, float(value))
            return m

        yield counter("streamer_frames_in", "Frames read from the source.", p.frames_in)
        yield counter("streamer_frames_processed", "Frames through detection, tracking and attributes.",
                      p.frames_processed)
        dropped = CounterMetricFamily("streamer_frames_dropped",
                                      "Frames read but never processed (the reasons sum to the "
                                      "frames_dropped of the summary and status): queue = oldest "
                                      "dropped from the full capture queue, stale = older than "
                                      "source.max_frame_age_s at inference.",
                                      labels=["camera", "reason"])
        dropped.add_metric(cam + ["queue"], float(p.frames.dropped))
        dropped.add_metric(cam + ["stale"], float(p.frames_stale))
        yield dropped
        yield gauge("streamer_fps", "Processed frames per second (last 2 s).", stats.fps)
        yield gauge("streamer_faces", "Confident faces in the latest processed frame.", stats.faces)
        yield gauge("streamer_tracks", "Confirmed tracks in the latest processed frame.", stats.tracks)
        yield gauge("streamer_source_up", "1 while the source delivers frames, 0 during an outage.",
                    1 if p.source_up else 0)
        yield counter("streamer_source_reconnects", "Successful reconnects of a lost live source.",
                      p.reconnects)
        yield counter("streamer_thread_restarts", "Pipeline threads restarted by the watchdog.",
                      p.thread_restarts)
        yield counter("streamer_stage_errors", "Frames a stage failed on (skipped, run went on).",
                      p.stage_errors)
        if p.last_frame_mono is not None:
            yield gauge("streamer_last_frame_age_seconds", "Seconds since the last processed frame.",
                        time.monotonic() - p.last_frame_mono)

        lat = p.latency
        h = HistogramMetricFamily("streamer_latency_seconds",
                                  "Capture to output (overlay and events produced) per frame.",
                                  labels=["camera"])
        h.add_metric(cam, histogram_buckets(lat.counts, LATENCY_BUCKETS_MS), lat.total_ms / 1000.0)
        yield h

        ev = CounterMetricFamily("streamer_events", "Events emitted, by type.", labels=["camera", "type"])
        for t, n in sorted(dict(p.sinks.by_type).items()):
            ev.add_metric(cam + [t], float(n))
        yield ev
        se = CounterMetricFamily("streamer_sink_errors", "Events a sink failed to take, by sink.",
                                 labels=["camera", "sink"])
        for s, n in sorted(dict(p.sinks.errors).items()):
            se.add_metric(cam + [s], float(n))
        yield se
        from streamer.web.health import sink_health

        links = sink_health(p)[1]
        if links:
            yield from link_metrics({self.camera: links})
        if stats.counts:
            c = CounterMetricFamily("streamer_counted_people", "People counted at a line or zone.",
                                    labels=["camera", "name", "direction"])
            for name, dirs in sorted(stats.counts.items()):
                if isinstance(dirs, dict):
                    for d, n in sorted(dirs.items()):
                        if isinstance(n, (int, float)):
                            c.add_metric(cam + [str(name), str(d)], float(n))
            yield c


def link_metrics(by_camera: dict[str, dict[str, dict]]):
    """``streamer_mqtt_connected`` / ``streamer_mqtt_spool_depth`` from
    ``{camera: {sink: {"connected": bool, "backlog": n}}}`` (sinks without those keys skipped)."""
    up = GaugeMetricFamily("streamer_mqtt_connected", "1 while the sink's broker link is up.",
                           labels=["camera", "sink"])
    depth = GaugeMetricFamily("streamer_mqtt_spool_depth", "Events waiting in the sink's spool "
                              "for the broker.", labels=["camera", "sink"])
    for cam, links in sorted(by_camera.items()):
        for sink, link in sorted(links.items()):
            if isinstance(link.get("connected"), bool):
                up.add_metric([cam, sink], 1.0 if link["connected"] else 0.0)
            if isinstance(link.get("backlog"), (int, float)):
                depth.add_metric([cam, sink], float(link["backlog"]))
    yield up
    yield depth


class SiteCollector(Collector):
    """Every camera of a site (``SiteView.cameras()``) at scrape time, a ``camera`` label on
    each series."""

    def __init__(self, site):
        self.site = site

    def describe(self):
        return []

    def collect(self):
        cams = self.site.cameras()

        def family(kind, name, doc, extra=()):
            return kind(name, doc, labels=["camera", *extra])

        up = family(GaugeMetricFamily, "streamer_camera_up", "1 while the camera's process runs.")
        state = family(GaugeMetricFamily, "streamer_camera_state", "1 for the camera's current "
                       "state (starting, running, restarting, down).", ["state"])
        fps = family(GaugeMetricFamily, "streamer_fps", "Processed frames per second.")
        src = family(GaugeMetricFamily, "streamer_source_up", "1 while the source delivers frames.")
        restarts = family(CounterMetricFamily, "streamer_camera_restarts",
                          "Times the supervisor restarted the camera's process.")
        age = family(GaugeMetricFamily, "streamer_last_frame_age_seconds",
                     "Seconds since the camera's last processed frame.")
        counted = family(GaugeMetricFamily, "streamer_counted_people_today",
                         "People counted at a line or zone today.", ["name", "direction"])
        stat = family(GaugeMetricFamily, "streamer_camera_stat", "The camera pipeline's latest "
                      "summary counters, by name.", ["stat"])
        links = {}
        for c in cams:
            cam = [c.name]
            up.add_metric(cam, 1.0 if c.status == "running" else 0.0)
            for s in ("starting", "running", "restarting", "down"):
                state.add_metric(cam + [s], 1.0 if c.status == s else 0.0)
            fps.add_metric(cam, float(c.fps or 0.0))
            src.add_metric(cam, 1.0 if c.source_connected else 0.0)
            restarts.add_metric(cam, float(c.restarts))
            if c.last_frame_age_s is not None:
                age.add_metric(cam, float(c.last_frame_age_s))
            for name, dirs in sorted((c.counts or {}).items()):
                for d, n in sorted(dirs.items()) if isinstance(dirs, dict) else ():
                    if isinstance(n, (int, float)) and not isinstance(n, bool):
                        counted.add_metric(cam + [str(name), str(d)], float(n))
            for k, v in sorted((c.stats or {}).items()):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    stat.add_metric(cam + [str(k)], float(v))
            if c.mqtt:
                links[c.name] = {"mqtt": c.mqtt}
        yield from (up, state, fps, src, restarts, age, counted, stat)
        yield from link_metrics(links)


class WebMetrics:
    """The web path's metrics, in the app's own registry."""

    def __init__(self, pipeline=None, camera: str = "camera", site=None):
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("streamer_http_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.analyze_requests = Counter("streamer_analyze_requests", "POST /analyze requests.",
                                        registry=r)
        self.analyze_errors = Counter("streamer_analyze_errors", "POST /analyze requests refused, "
                                      "by error code.", ["code"], registry=r)
        self.analyze_seconds = Histogram("streamer_analyze_seconds", "POST /analyze handling time "
                                         "(successful requests).", buckets=ANALYZE_BUCKETS_S, registry=r)
        self.analyze_faces = Counter("streamer_analyze_faces", "Faces found by POST /analyze.",
                                     registry=r)
        if pipeline is not None:
            r.register(PipelineCollector(pipeline, camera))
        if site is not None:
            r.register(SiteCollector(site))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def parse(text: str) -> list[tuple[str, dict, float]]:
    """Every sample of exposition text as ``(name, labels, value)`` (tests and the bench read
    it), through prometheus_client's own parser."""
    return [(s.name, dict(s.labels), float(s.value))
            for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(samples: list[tuple[str, dict, float]], name: str, /, **labels) -> Optional[float]:
    """The first sample ``name`` whose labels include ``labels`` (None when absent)."""
    want = {k: str(v) for k, v in labels.items()}
    for sname, slabels, v in samples:
        if sname == name and all(slabels.get(k) == val for k, val in want.items()):
            return v
    return None
