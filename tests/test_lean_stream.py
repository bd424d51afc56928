"""What a stream process keeps out of its memory (issue 13, <= 150 MB per stream): a real
stream on a real clip, in a child process, must not have imported the libraries whose cost was
measured and removed (streamer/config/fields.py, streamer/hashes.py, media/modelstore.py):
pydantic (18 MB), hashlib with OpenSSL's libcrypto (3.6 MB), urllib.request with http.client,
email and ssl (~2 MB, 40 ms)."""

import hashlib
import subprocess
import sys

from conftest import ROOT, video_path

FORBIDDEN = ("pydantic", "pydantic_core", "hashlib", "_hashlib", "urllib.request", "http.client",
             "ssl", "email", "secrets")

CHILD = r"""
import sys
sys.path.insert(0, %r)
from streamer import cli
try:
    cli.main(["stream", "--source", %r, "--max-frames", "20", "--headless"])
except SystemExit as e:
    assert not e.code, e.code
print(" ".join(sorted(sys.modules)))
"""


def test_a_stream_loads_none_of_the_removed_libraries():
    clip = str(video_path("face_recognition__short_hamilton_clip.mp4"))
    r = subprocess.run([sys.executable, "-c", CHILD % (str(ROOT), clip)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = set(r.stdout.split())
    assert "streamer.core.processor" in loaded and "cv2" in loaded  # the stream really ran
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


def test_builtin_hashes_match_openssl_on_a_model_file():
    from streamer import hashes

    data = (ROOT / "models" / "manifest.json").read_bytes()
    assert hashes.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashes.sha1(data).hexdigest() == hashlib.sha1(data).hexdigest()
