"""SHA-256 and SHA-1 from CPython's own modules, without importing ``hashlib``.

Why: ``import hashlib`` maps OpenSSL's libcrypto, 3.6 MB of every stream process's resident
memory (issue 13: <= 150 MB per stream) for a few hashes at start (model checksums, the
machine key of the backend measurement). CPython's built-in SHA-2 is ~5x slower than OpenSSL's
(~30 ms for the age net's 11 MB, once per process); that is the price. Same digests either way.
"""

from __future__ import annotations

try:  # CPython 3.11
    from _sha1 import sha1
    from _sha256 import sha256
except ImportError:  # pragma: no cover - 3.12+ renamed them; other interpreters: OpenSSL's
    try:
        from _sha1 import sha1
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha1, sha256

__all__ = ["sha1", "sha256"]
