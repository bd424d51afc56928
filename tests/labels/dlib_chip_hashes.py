"""Regenerates the expected chip hashes of tests/test_attributes.py (DLIB_CHIPS) from real dlib,
so they are dlib's output, not streamer's.

dlib does not go into the project's venv (it needs a long compile from source); its binary
wheel does into a throwaway one:

    python3 -m venv /tmp/dlibvenv && /tmp/dlibvenv/bin/pip install dlib-bin==20.0.1.post1 numpy
    /tmp/dlibvenv/bin/python tests/labels/dlib_chip_hashes.py

Last run 2026-12-01 with dlib 20.0.1 (dlib-bin 20.0.1.post1) and numpy 2.x: all four hashes
equal the ones in DLIB_CHIPS. The test image must stay the one of ``_dlib_test_image()``.
"""

import hashlib

import dlib
import numpy as np

CASES = [((40.3, 30.7, 250.2, 240.6), 0.2, 64), ((100.5, 60.25, 180.75, 140.5), -0.35, 32),
         ((-30.0, 100.0, 90.0, 220.0), 0.1, 64), ((150.0, 100.0, 165.0, 115.0), 0.05, 64)]


def test_image() -> np.ndarray:
    base = np.random.default_rng(7).integers(0, 256, (240, 320, 3)).astype(np.int32)
    return ((base + np.roll(base, 1, 0) + np.roll(base, 1, 1)
             + np.roll(np.roll(base, 1, 0), 1, 1)) // 4).astype(np.uint8)


if __name__ == "__main__":
    img = test_image()
    print(f"dlib {dlib.__version__}")
    for rect, angle, n in CASES:
        chip = dlib.extract_image_chip(img, dlib.chip_details(dlib.drectangle(*rect), dlib.chip_dims(n, n), angle))
        sha = hashlib.sha256(np.ascontiguousarray(chip, np.uint8).tobytes()).hexdigest()
        print(f'    ({rect}, {angle}, {n}, "{sha}"),')
