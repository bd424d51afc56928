"""Who may call what: ``web.token`` on every route but the pages, and the editor's write rule.

Contract:
- With ``web.token`` set, every endpoint outside ``PUBLIC_ENDPOINTS`` needs
  ``Authorization: Bearer <token>``; endpoints an ``<img>`` or ``<a download>`` loads (streams,
  snapshots, crops, CSV) also take ``?access_token=`` because those cannot send headers.
  The pages themselves (``/``, ``/dashboard``, ``/static/*``) hold no data and ``/healthz`` is
  for load balancers, so those stay public.
- Without a token, writes (the geometry editor's PUT) are refused with 403 when the server
  listens beyond loopback: anyone who can reach the port could otherwise recount a site.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import request

from streamer.config import Config
from streamer.web.errors import ApiError

log = logging.getLogger(__name__)

PUBLIC_ENDPOINTS = {"index", "dashboard", "static", "healthz"}
QUERY_TOKEN_ENDPOINTS = {"stream", "camera_stream", "camera_snapshot", "crop", "counts_csv"}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def check_token(token: str) -> None:
    """Raise 401 unless the request carries ``token`` (constant-time compare)."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return
    given = request.headers.get("Authorization", "")
    sent = given[7:].strip() if given[:7].lower() == "bearer " else ""
    if not sent and request.endpoint in QUERY_TOKEN_ENDPOINTS:
        sent = request.args.get("access_token", "")
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong token: send "
                                            "'Authorization: Bearer <web.token>'")


def check_write_allowed(cfg: Config) -> None:
    """403 for a write when no token guards it and the server is reachable beyond loopback."""
    if cfg.web.token or is_loopback(cfg.web.host):
        return
    raise ApiError(403, "forbidden", f"editing is refused: the server listens on {cfg.web.host} "
                                     "without web.token; set web.token (or listen on 127.0.0.1)")


def warn_if_exposed(cfg: Config) -> None:
    if not is_loopback(cfg.web.host) and not cfg.web.token:
        log.warning("serving on %s without web.token: anyone who reaches this address can use "
                    "the API; set web.token", cfg.web.host)
