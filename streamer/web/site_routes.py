"""The site API (``run.py site``): cameras, events, counts, snapshots, streams, geometry, crops.

Every route reads through ``runtime.site_view.SiteView`` only (no processes, pipes or SQL
here), so it is tested against a fake and the site runner against a real server. Without a
site in this process every route is 404 ``no_site``.

    GET /api/cameras                      [CameraStatus.to_dict(), ...]
    GET /api/events?camera=&type=&since=&until=&limit=     {"events": [...], "crops": bool},
                                          newest first
    GET /api/counts?camera=&line=&bucket=hour|day&since=&until=
                                          {"series": [{start, in, out, by_gender, by_age}]}
    GET /api/counts.csv                   the same series as CSV (one column per gender/age bin)
    GET /api/cameras/<name>/snapshot.jpg  the latest annotated frame
    GET /api/cameras/<name>/stream.mjpg   the snapshots as MJPEG
    GET /api/cameras/<name>/geometry      {"lines", "zones", "size"} for the editor
    PUT /api/cameras/<name>/geometry      {"lines", "zones"}: validated, saved, camera restarted
    GET /api/crops/<event_id>.jpg         an end event's face thumbnail (privacy.keep_crops)
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

from flask import Flask, Response, jsonify, request, send_file

from streamer.errors import ConfigError
from streamer.web import queries
from streamer.web.auth import check_write_allowed
from streamer.web.errors import ApiError
from streamer.web.stream import mjpeg_response, snapshot_frames

EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def _age_key(label: str):
    m = re.match(r"^(\d+)", label)
    return (0, int(m.group(1)), label) if m else (1, 0, label)


def counts_csv(series: list[dict]) -> str:
    """One row per bucket: start, in, out, then ``gender_<g>`` and ``age_<bin>`` columns (the
    union over all rows; a bucket without a value gets 0)."""
    genders = sorted({g for row in series for g in (row.get("by_gender") or {})})
    ages = sorted({a for row in series for a in (row.get("by_age") or {})}, key=_age_key)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["start", "in", "out"] + [f"gender_{g}" for g in genders] + [f"age_{a}" for a in ages])
    for row in series:
        bg, ba = row.get("by_gender") or {}, row.get("by_age") or {}
        w.writerow([row.get("start"), row.get("in", 0), row.get("out", 0)]
                   + [bg.get(g, 0) for g in genders] + [ba.get(a, 0) for a in ages])
    return out.getvalue()


def register(app: Flask, st) -> None:
    cfg = st.cfg

    def site():
        if st.site is None:
            raise ApiError(404, "no_site", "no site runs in this process: start one with "
                                           "`python run.py site --config FILE`")
        return st.site

    def names() -> list[str]:
        return [c.name for c in site().cameras()]

    def known(name: str) -> str:
        if name not in names():
            raise ApiError(404, "unknown_camera", f"no camera named {name[:100]!r} (known: "
                                                  f"{', '.join(names()) or 'none'})", param="name")
        return name

    def count_query():
        a = request.args
        s = site()
        cam = queries.camera(a, names())
        since, until = queries.time_range(a)
        return s.store.counts(camera=cam, line=queries.text(a, "line"), bucket=queries.bucket(a),
                              since=since, until=until)

    @app.get("/api/cameras")
    def cameras():
        return jsonify([c.to_dict() for c in site().cameras()])

    @app.get("/api/events")
    def events():
        a = request.args
        s = site()
        cam = queries.camera(a, names())
        typ = queries.event_type(a)
        since, until = queries.time_range(a)
        n = queries.limit(a)
        # crops: whether the page may ask for thumbnails (privacy.keep_crops)
        return jsonify(events=s.store.events(camera=cam, type=typ, since=since, until=until, limit=n),
                       crops=st.keep_crops)

    @app.get("/api/counts")
    def counts():
        return jsonify(series=count_query())

    @app.get("/api/counts.csv", endpoint="counts_csv")  # the name auth's query-token rule knows
    def counts_csv_route():
        resp = Response(counts_csv(count_query()), mimetype="text/csv")
        resp.headers["Content-Disposition"] = 'attachment; filename="counts.csv"'
        return resp

    @app.get("/api/cameras/<name>/snapshot.jpg")
    def camera_snapshot(name: str):
        s = site()
        try:
            jpeg = s.snapshot(known(name))
        except KeyError:
            raise ApiError(404, "unknown_camera", f"no camera named {name[:100]!r}", param="name") from None
        if jpeg is None:
            raise ApiError(404, "no_frame", f"camera {name!r} has not delivered a frame yet")
        resp = Response(jpeg, mimetype="image/jpeg")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/api/cameras/<name>/stream.mjpg")
    def camera_stream(name: str):
        s = site()
        name = known(name)
        return mjpeg_response(snapshot_frames(lambda: s.snapshot(name), st.stop), st.mjpeg_slots)

    @app.get("/api/cameras/<name>/geometry")
    def camera_geometry(name: str):
        s = site()
        try:
            return jsonify(s.geometry(known(name)))
        except KeyError:
            raise ApiError(404, "unknown_camera", f"no camera named {name[:100]!r}", param="name") from None

    @app.put("/api/cameras/<name>/geometry")
    def camera_geometry_put(name: str):
        check_write_allowed(cfg)
        s = site()
        name = known(name)
        try:
            doc = json.loads(request.get_data(cache=False) or b"null")
        except (ValueError, RecursionError):
            raise ApiError(400, "not_json", 'body: expected JSON {"lines": [...], "zones": [...]}',
                           param="body") from None
        lines, zones = queries.geometry(doc)
        try:
            s.save_geometry(name, lines, zones)
        except ConfigError as e:
            raise ApiError(400, "bad_geometry", str(e)) from None
        except KeyError:
            raise ApiError(404, "unknown_camera", f"no camera named {name[:100]!r}", param="name") from None
        return jsonify(saved=True, camera=name, lines=lines, zones=zones)

    @app.get("/api/crops/<event_id>.jpg")
    def crop(event_id: str):
        s = site()
        if not st.keep_crops:
            raise ApiError(404, "no_crops", "face crops are not kept (privacy.keep_crops is off)")
        if not EVENT_ID.match(event_id):
            raise queries.bad("event_id", "expected an event id like <run>-<seq>")
        path = s.store.crop_path(event_id)
        if not path or not os.path.isfile(path):
            raise ApiError(404, "not_found", f"no face crop kept for event {event_id!r}")
        return send_file(path, mimetype="image/jpeg", max_age=3600)
