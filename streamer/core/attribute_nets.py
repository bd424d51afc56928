"""The age and gender nets: chips in, probabilities out.

``AttributeNets`` is the contract the estimator in ``attributes.py`` uses; ``DlibNets`` (default,
CC0 ONNX nets) and ``LeviHassnerNets`` (user-supplied Caffe files, OpenCV 4.x only) implement it,
and tests inject a fake. ``AgeScale`` says what the age net's classes mean.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import cv2
import numpy as np

from streamer import inference
from streamer.core import align
from streamer.media import modelstore
from streamer.config import AttributesConfig
from streamer.errors import ModelError, one_line

AGE_ONNX = "age-v1.onnx"
GENDER_ONNX = "gender-v1.onnx"
LH_FILES = ("age_deploy.prototxt", "age_net.caffemodel", "gender_deploy.prototxt",
            "gender_net.caffemodel")

@dataclass(frozen=True)
class AgeScale:
    """What the age net's classes mean: a representative age and an interval per class.

    The distribution is read as uniform inside each interval, so quantiles and "mass within
    5 years" are continuous even for Levi-Hassner's 8 wide buckets.
    """

    values: np.ndarray  # (K,) years, used for the expected value
    edges: np.ndarray  # (K + 1,) interval bounds, increasing

    def expected(self, p: np.ndarray) -> float:
        return float(p @ self.values)

    def cdf(self, years: float, p: np.ndarray) -> float:
        return float(np.interp(years, self.edges, np.concatenate([[0.0], np.cumsum(p)])))

    def quantile(self, q: float, p: np.ndarray) -> float:
        c = np.concatenate([[0.0], np.cumsum(p)])
        c /= c[-1]
        # Zero-probability classes make c flat; np.interp needs increasing x, so nudge.
        c = c + np.arange(len(c)) * 1e-12
        return float(np.interp(q, c, self.edges))


DLIB_AGES = AgeScale(
    values=np.array([0.25] + [float(k) for k in range(1, 81)]),
    edges=np.array([0.0] + [k + 0.5 for k in range(81)]),
)
# (0-2) (4-6) (8-12) (15-20) (25-32) (38-43) (48-53) (60-100); gaps split at their middle.
LH_AGES = AgeScale(
    values=np.array([1.0, 5.0, 10.0, 17.5, 28.5, 40.5, 50.5, 80.0]),
    edges=np.array([0.0, 3.0, 7.0, 13.5, 22.5, 35.0, 45.5, 56.5, 100.0]),
)


class AttributeNets(Protocol):
    """Chips in, probabilities out; one forward pass per net per call.

    ``chip_sizes`` is (age, gender) chip side in pixels and ``chip_padding`` the dlib padding
    the chips are cut with. ``forward`` takes BGR uint8 chips and returns
    ``(age_probs (N, K), gender_probs (M, 2) as [female, male])``, one row per chip given:
    the gender batch may hold more chips than the age batch (``AttributeEstimator`` adds a
    face's chip from a second detector's landmarks, ``pair_kind``, with the dlib nets).
    """

    chip_sizes: tuple[int, int]
    chip_padding: float
    ages: AgeScale

    def forward(self, age_chips: np.ndarray, gender_chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _blob(chips: np.ndarray, mean_rgb: Sequence[float], scale: float, size: int,
          swap_rb: bool) -> np.ndarray:
    """The float NCHW blob a net sees (reference for the backends' own conversion, in tests)."""
    x = chips[..., ::-1] if swap_rb else chips
    x = _sized(x, size).astype(np.float32)
    x -= np.asarray(mean_rgb, np.float32)
    x *= np.float32(scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _sized(chips: np.ndarray, size: int) -> np.ndarray:
    if chips.shape[1:3] == (size, size):
        return chips
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in chips])


def _as_model(net, spec: inference.InputSpec) -> inference.Model:
    """An inference-layer model, or a raw cv2.dnn-like net (setInput/forward) wrapped as one."""
    if hasattr(net, "infer"):
        return net
    from streamer.inference.cv_backend import OpenCvModel
    return OpenCvModel(net, spec)


class DlibNets:
    """The dlib-models (Cydral, CC0) age and gender nets as ONNX, through ``streamer.inference``.

    Input: RGB, ``(pixel - mean) / 256``; age 64x64 -> 81 classes (age k, class 0 = 0.25 y),
    gender 32x32 -> [female, male]. A lock makes ``forward`` safe to share between a web
    server's threads (neither a ``cv2.dnn.Net`` nor an OpenVINO infer request is re-entrant).
    """

    MEAN_RGB = (122.782, 117.001, 104.298)
    SPEC = inference.InputSpec(rgb=True, mean=MEAN_RGB, scale=1 / 256, batch=True)
    chip_sizes = (align.AGE_CHIP, align.GENDER_CHIP)
    chip_padding = align.CHIP_PADDING
    ages = DLIB_AGES

    def __init__(self, models_dir: Optional[Path] = None, *, age_net=None, gender_net=None):
        # age_net / gender_net: already-loaded models or cv2.dnn nets (tests wrap them to count calls).
        self._age = _as_model(age_net, self.SPEC) if age_net is not None else \
            inference.load(modelstore.path_of(AGE_ONNX, models_dir), self.SPEC)
        self._gender = _as_model(gender_net, self.SPEC) if gender_net is not None else \
            inference.load(modelstore.path_of(GENDER_ONNX, models_dir), self.SPEC)
        self.backend = getattr(self._age, "backend", "opencv")
        self._lock = threading.Lock()

    def forward(self, age_chips: np.ndarray, gender_chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(age_chips) == 0:
            return np.zeros((0, 81), np.float32), np.zeros((0, 2), np.float32)
        a = np.ascontiguousarray(_sized(age_chips, self.chip_sizes[0]))
        g = np.ascontiguousarray(_sized(gender_chips, self.chip_sizes[1]))
        with self._lock:
            pa = np.array(self._age.infer(a)[0], np.float32).reshape(len(a), -1)
            pg = np.array(self._gender.infer(g)[0], np.float32).reshape(len(g), -1)
        return pa, pg

    def gender(self, chips: np.ndarray) -> np.ndarray:
        """Gender probabilities (N, 2) [female, male] for 32 px chips alone (the studies in
        scripts/fit_calibration.py score many views of one face without the age net)."""
        if len(chips) == 0:
            return np.zeros((0, 2), np.float32)
        g = np.ascontiguousarray(_sized(chips, self.chip_sizes[1]))
        with self._lock:
            return np.array(self._gender.infer(g)[0], np.float32).reshape(len(g), -1)


class LeviHassnerNets:
    """The seed's Levi & Hassner (2015) Caffe nets, brought by the user (OpenCV 4.x only).

    Files in the models folder: age_deploy.prototxt, age_net.caffemodel,
    gender_deploy.prototxt, gender_net.caffemodel. Input 227x227 BGR minus the Adience mean,
    no scaling; age -> 8 buckets, gender -> [Male, Female] (reordered here to [female, male]).
    Chips are aligned like the dlib ones but with padding 0.4, which frames the face about as
    the seed's box-plus-20-px crop did for a face 100-150 px wide. Caffe files run on OpenCV DNN
    whatever ``inference.backend`` says (OpenVINO has no Caffe reader).
    """

    MEAN_BGR = (78.4263377603, 87.7689143744, 114.895847746)
    SPEC = inference.InputSpec(mean=MEAN_BGR, batch=True)
    chip_sizes = (227, 227)
    chip_padding = 0.4
    ages = LH_AGES

    def __init__(self, models_dir: Optional[Path] = None):
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise ModelError(
                f"attributes.model_set levi_hassner needs OpenCV's Caffe importer, which OpenCV "
                f"{cv2.__version__} removed; use attributes.model_set: dlib, or install "
                "opencv-python<5 to keep the Caffe nets")
        d = Path(models_dir or modelstore.default_dir())
        paths = [d / name for name in LH_FILES]
        for p in paths:
            if not p.is_file():
                raise ModelError(
                    f"Levi-Hassner model file {p} is missing: put age_deploy.prototxt, "
                    f"age_net.caffemodel, gender_deploy.prototxt and gender_net.caffemodel in {d}, "
                    "or use attributes.model_set: dlib")
        self._age = self._load(paths[0], paths[1], len(LH_AGES.values))
        self._gender = self._load(paths[2], paths[3], 2)
        self.backend = "opencv"
        self._lock = threading.Lock()

    @classmethod
    def _load(cls, proto: Path, weights: Path, classes: int):
        try:
            model = inference.load(weights, cls.SPEC, config=proto, backend="opencv")
            # A weights file that is not the deploy file's model can parse yet miss blobs;
            # one forward at load time turns that into an error here rather than mid-stream.
            out = model.infer(np.zeros((1, 227, 227, 3), np.uint8))[0]
        except cv2.error as e:
            raise ModelError(f"cannot load {weights} with {proto}: {one_line(e, last=True)}") from None
        except ModelError as e:
            raise ModelError(f"cannot load {weights} with {proto}: {e}") from None
        if out.size != classes:
            raise ModelError(f"{weights} with {proto} gives {out.size} outputs, expected {classes} "
                             "(Levi-Hassner: 8 age buckets, 2 genders)")
        return model

    def forward(self, age_chips: np.ndarray, gender_chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(age_chips) == 0:
            return np.zeros((0, 8), np.float32), np.zeros((0, 2), np.float32)
        a = np.ascontiguousarray(_sized(age_chips, self.chip_sizes[0]))
        g = a if gender_chips is age_chips else np.ascontiguousarray(_sized(gender_chips, self.chip_sizes[1]))
        with self._lock:
            pa = np.array(self._age.infer(a)[0], np.float32).reshape(len(a), -1)
            pg = np.array(self._gender.infer(g)[0], np.float32).reshape(len(g), -1)
        return pa, pg[:, ::-1].copy()  # [Male, Female] -> [female, male]


def build_nets(cfg: AttributesConfig, models_dir: Optional[Path] = None) -> AttributeNets:
    """Load the configured model set (raises ModelError naming the file or the fix)."""
    if cfg.model_set == "levi_hassner":
        return LeviHassnerNets(models_dir)
    return DlibNets(models_dir)
