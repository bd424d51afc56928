"""Prometheus metrics for ``/metrics``: the pipeline's counters read at scrape time, plus the
web path's own request counters.

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
                                      "Frames skipped: queue = oldest dropped from a full queue, "
                                      "stale = older than source.max_frame_age_s at inference.",
                                      labels=["camera", "reason"])
        dropped.add_metric(cam + ["queue"], float(p.frames.dropped + p.results.dropped))
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
        if stats.counts:
            c = CounterMetricFamily("streamer_counted_people", "People counted at a line or zone.",
                                    labels=["camera", "name", "direction"])
            for name, dirs in sorted(stats.counts.items()):
                if isinstance(dirs, dict):
                    for d, n in sorted(dirs.items()):
                        if isinstance(n, (int, float)):
                            c.add_metric(cam + [str(name), str(d)], float(n))
            yield c


class WebMetrics:
    """The web path's metrics, in the app's own registry."""

    def __init__(self, pipeline=None, camera: str = "camera"):
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

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def parse(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` from exposition text (tests and the bench read it)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def value(samples: dict[str, float], name: str, /, **labels) -> Optional[float]:
    """The sample ``name`` whose labels include ``labels`` (None when absent)."""
    for key, v in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{val}"' in rest for k, val in labels.items()):
            return v
    return None
