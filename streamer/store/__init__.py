"""Event stores behind ``streamer.runtime.site_view.EventStore``.

``open_store(site)`` opens the store a site config asks for: today always the embedded SQLite
file (``store.path``, crops beside it in ``<store.path stem>-crops/`` when
``privacy.keep_crops``). A server database would be a second class with the same five methods
(``add``, ``events``, ``counts``, ``crop_path``, ``prune``), chosen here by a new ``store.url``
key; nothing else in the site changes (see the README, "Site: many cameras").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from streamer.errors import ConfigError

from streamer.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "open_store", "crops_dir_for"]


def crops_dir_for(db_path: str | Path) -> Path:
    p = Path(db_path)
    return p.with_name(p.stem + "-crops")


def open_store(site: Any) -> SqliteStore:
    """``site`` is a ``SiteConfig``: ``site.store.path`` (already resolved against the config
    file's folder by the loader), ``site.privacy.keep_crops``, ``site.cameras`` (name -> Config,
    for each camera's ``counting.age_bins``)."""
    path = Path(site.store.path)
    keep = bool(getattr(getattr(site, "privacy", None), "keep_crops", False))
    bins = {name: cfg.counting.age_bins for name, cfg in dict(site.cameras).items()}
    try:
        return SqliteStore(path, crops_dir_for(path) if keep else None, bins)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"store.path: cannot open {path}: {getattr(e, 'strerror', None) or e}") from None
