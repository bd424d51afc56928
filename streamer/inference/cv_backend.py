"""OpenCV DNN backend: ``cv2.dnn`` nets behind the ``Model`` verb.

OpenCV builds the float blob itself (``blobFromImages``: swap, mean, scale in one C++ pass);
``cv2.dnn.Net`` keeps its buffers between calls of the same input shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from streamer.errors import ModelError, one_line
from streamer.inference.backend import InputSpec


def float_blob(images: np.ndarray, s: InputSpec) -> np.ndarray:
    """uint8 BGR N x H x W x 3 -> the float N x 3 x H x W the net wants (channel order, mean,
    scale), for the backends that take a float blob (OpenCV DNN, ONNX Runtime)."""
    if s.rgb or s.scale != 1.0 or any(s.mean):
        return cv2.dnn.blobFromImages(list(images), scalefactor=s.scale, mean=s.mean, swapRB=s.rgb,
                                      crop=False)
    # Plain float NCHW: a transpose + cast is one numpy pass, cheaper than blobFromImages.
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)


class OpenCvModel:
    backend = "opencv"

    # OpenCV 4.x's DNN gives wrong answers when one Net is fed a new input size after another
    # (measured: CenterFace's outputs drift further from the right ones with each new size;
    # OpenCV 5 reshapes correctly). There a detector keeps one Net per input size (a stream has
    # one; photos reuse the last few), loaded again from the file.
    NETS_PER_SIZE = int(cv2.__version__.split(".")[0]) < 5
    SIZES_KEPT = 3

    def __init__(self, net, spec: InputSpec, outputs: Sequence[str] = (), reload=None):
        # ``net``: a cv2.dnn.Net, or anything with setInput/forward (tests wrap nets to count calls).
        # ``reload``: makes a fresh Net (for one Net per input size, see NETS_PER_SIZE).
        self._net = net
        self.spec = spec
        self.outputs = tuple(outputs)
        self._reload = reload if (self.NETS_PER_SIZE and not spec.batch) else None
        self._by_size: dict = {}
        self._loaded_net_used = False
        self._all: Optional[list[str]] = None
        self._pick: list[int] = []

    @classmethod
    def from_files(cls, path: Path, spec: InputSpec, outputs: Sequence[str] = (),
                   config: Optional[Path] = None) -> "OpenCvModel":
        if path.suffix == ".caffemodel" and not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise ModelError(f"{path.name} is a Caffe model and OpenCV {cv2.__version__} has no "
                             "Caffe importer; install opencv-python<5")
        try:
            net = cls._read(path, config)
        except cv2.error as e:
            raise ModelError(f"cannot load {path} with OpenCV {cv2.__version__}: {one_line(e, last=True)}") from None
        if net.empty():
            raise ModelError(f"cannot load {path}: OpenCV returned an empty net")
        return cls(net, spec, outputs, reload=lambda: cls._read(path, config))

    @staticmethod
    def _read(path: Path, config: Optional[Path]):
        if path.suffix == ".caffemodel":
            return cv2.dnn.readNetFromCaffe(str(config), str(path))
        if path.suffix == ".pb":
            return cv2.dnn.readNetFromTensorflow(str(path), str(config) if config else "")
        return cv2.dnn.readNet(str(path))

    def _net_for(self, shape) -> object:
        if self._reload is None:
            return self._net
        net = self._by_size.pop(shape, None)
        if net is None:
            net = self._reload() if self._loaded_net_used else self._net
            self._loaded_net_used = True
        self._by_size[shape] = net  # most recent last
        while len(self._by_size) > self.SIZES_KEPT:
            self._by_size.pop(next(iter(self._by_size)))
        return net

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        blob = float_blob(images, self.spec)
        net = self._net_for(images.shape[1:3])
        net.setInput(blob)
        if not self.outputs:
            return [net.forward()]
        if self._all is None:
            # OpenCV 5's engine computes every output in one forward and wants them all named.
            names = list(net.getUnconnectedOutLayersNames())
            missing = [n for n in self.outputs if n not in names]
            if missing:
                raise ModelError(f"net has no output {missing[0]!r} (outputs: {', '.join(names)})")
            self._all, self._pick = names, [names.index(n) for n in self.outputs]
        outs = net.forward(self._all)
        return [outs[i] for i in self._pick]
