"""Which files a batch reads: every image under ``--input`` (by extension), sorted, with unsafe
paths refused (listed in errors.csv instead of read).

Refused: names that are not a safe relative UTF-8 path, symlinks with an absolute target,
symlinks resolving outside the input tree, broken symlinks and symlinked folders (with
``--recursive``: they could loop). A relative symlink to a file inside the tree is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from streamer.batch.records import Item

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp",
                              ".tif", ".tiff"})


def inside(path: str, root: str) -> bool:
    """Is the (resolved) ``path`` ``root`` itself or below it?"""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def discover(root: Path, recursive: bool) -> list[Item]:
    """Every image file under ``root`` (by extension), sorted, with unsafe paths refused."""
    root_real = os.path.realpath(root)
    items: list[Item] = []

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            items.append(Item(prefix.rstrip("/") or ".", refusal=f"unreadable: cannot list folder: "
                                                                   f"{e.strerror}"))
            return
        for e in entries:
            rel = prefix + e.name
            is_image = os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
            if not _safe_rel(rel):
                items.append(Item(_printable(rel), refusal="refused: the name is not a safe relative "
                                                           "path (.., empty part or not UTF-8)"))
                continue
            if e.is_symlink():
                item = _symlink_item(e, rel, root_real, recursive, is_image)
                if item is not None:
                    items.append(item)
            elif e.is_dir(follow_symlinks=False):
                if recursive:
                    walk(e.path, rel + "/")
            elif is_image and e.is_file(follow_symlinks=False):
                items.append(Item(rel, src=e.path))

    walk(str(root), "")
    if not items:
        _explain_no_images(root, recursive)
    return items


def _explain_no_images(root: Path, recursive: bool) -> None:
    """Nothing to read: raise the one line that says why (exit 1), instead of a quiet
    "0 images" run; when the images sit in subfolders, say how many and that --recursive
    reads them. The count stops at COUNT_CAP so a huge tree costs a bounded walk."""
    from streamer.errors import StreamerError

    below = 0 if recursive else _count_images_below(root)
    if below:
        more = "+" if below >= COUNT_CAP else ""
        raise StreamerError(f"--input {root}: no images at its top level, but {below}{more} in "
                            f"subfolders below it; add --recursive to read them")
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    where = "in it or its subfolders" if recursive else "in it"
    raise StreamerError(f"--input {root}: no images {where} (looked for {exts})")


COUNT_CAP = 100_000


def _count_images_below(root: Path) -> int:
    n = 0
    for _dir, _subdirs, files in os.walk(root):  # symlinked folders are not followed
        n += sum(1 for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
        if n >= COUNT_CAP:
            break
    return n


def _symlink_item(e: os.DirEntry, rel: str, root_real: str, recursive: bool,
                  is_image: bool) -> Optional[Item]:
    target = os.readlink(e.path)
    real = os.path.realpath(e.path)
    is_dir = os.path.isdir(real)
    if not is_image and not (is_dir and recursive):
        return None  # not something batch would read anyway
    if os.path.isabs(target):
        return Item(rel, refusal=f"refused: absolute symlink (-> {target}); only relative links "
                                 "inside the input folder are followed")
    if not inside(real, root_real):
        return Item(rel, refusal=f"refused: symlink points outside the input folder (-> {target})")
    if is_dir:
        return Item(rel, refusal="refused: symlinked folder not followed (could loop)")
    if not os.path.isfile(real):
        return Item(rel, refusal=f"refused: broken symlink or not a regular file (-> {target})")
    return Item(rel, src=real)


def _safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or os.path.isabs(rel):
        return False
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogateescape)
        return False
    return True


def _printable(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
