"""Detection cadence for dense deployments: ``due(image, live_tracks) -> bool``, once per frame.

Default (``detector.interval: 1``, ``motion_gate: false``): every frame is detected and this
object is not built at all.

- ``interval: N``: the detector runs on every N-th processed frame; the tracker's motion
  prediction carries the boxes between (``Tracker.predict``), as DeepStream's ``interval`` and
  DL Streamer's ``inference-interval`` do. Detector cost falls by N; the price is boxes that
  lag a turning face, tracks confirmed N times later, and crossings/attributes seen only on
  detected frames (measured in the bench: ``python run.py bench --only cadence``). A skipped
  frame is not a miss, so ``tracker.max_misses`` counts detection passes: a lost face's track
  coasts up to N x max_misses frames before it ends.
- ``motion_gate``: a frame is detected only when something moved since the last detected
  frame or a track is live (as Frigate runs its detector only where there is motion). An
  empty, still scene then costs a 160x90 grey thumbnail per frame instead of a detection.
  Motion = more than ``MOTION_FRACTION`` of the thumbnail's pixels changed by more than
  ``MOTION_LEVEL`` grey levels against the thumbnail of the last detected frame (comparing
  against the last *detected* frame, not the previous one, so slow motion adds up).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

THUMB = (160, 90)
MOTION_LEVEL = 12  # grey levels: above sensor noise and H.264 flicker on the dev clips
MOTION_FRACTION = 0.002  # of the thumbnail's pixels: ~29 of 14400, a face of ~50 px at 1080p


class DetectionCadence:
    def __init__(self, interval: int = 1, motion_gate: bool = False):
        if interval < 1:
            raise ValueError(f"detector.interval: expected int >= 1, got {interval}")
        self.interval = interval
        self.motion_gate = motion_gate
        self._n = 0
        self._ref: Optional[np.ndarray] = None
        self._thumb = np.empty((THUMB[1], THUMB[0], 3), np.uint8)
        self._grey = np.empty((THUMB[1], THUMB[0]), np.uint8)
        self._diff = np.empty((THUMB[1], THUMB[0]), np.uint8)
        self.skipped_interval = 0
        self.skipped_still = 0

    def _moved(self, image: np.ndarray) -> bool:
        small = cv2.resize(image, THUMB, dst=self._thumb, interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY, dst=self._grey)
        if self._ref is None:
            return True
        cv2.absdiff(grey, self._ref, dst=self._diff)
        return int(np.count_nonzero(self._diff > MOTION_LEVEL)) > MOTION_FRACTION * self._diff.size

    def due(self, image: np.ndarray, live_tracks: int) -> bool:
        """Should this frame be detected? Call once per processed frame, in order."""
        n, self._n = self._n, self._n + 1
        if n % self.interval:
            self.skipped_interval += 1
            return False
        if self.motion_gate:
            moved = self._moved(image)
            if not moved and not live_tracks:
                self.skipped_still += 1
                return False
            if self._ref is None:
                self._ref = self._grey.copy()
            else:
                np.copyto(self._ref, self._grey)  # this detected frame is the new reference
        return True

    def reset(self) -> None:
        """A scene cut or an outage: the next frame is detected."""
        self._n = 0
        self._ref = None


def build(interval: int, motion_gate: bool) -> Optional[DetectionCadence]:
    """None for the default (detect every frame): the processor then pays nothing."""
    if interval <= 1 and not motion_gate:
        return None
    return DetectionCadence(interval, motion_gate)
