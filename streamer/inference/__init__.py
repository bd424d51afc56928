"""The inference layer: every net (YuNet, CenterFace, res10 SSD, age, gender) runs through it.

``load(path, spec, outputs)`` returns a ``Model`` whose one verb is ``infer(images)``:
uint8 BGR images (N x H x W x 3) in, the requested outputs (in the order asked) out. The
model does its own pixel conversion (channel order, mean, scale), so callers never build a
float blob: on OpenVINO the conversion is compiled into the graph, on OpenCV DNN it is one
``cv2.dnn.blobFromImages``.

Backends (``inference.backend``): ``openvino`` (1.5-2x faster than ``cv2.dnn`` for every net on
the AVX2 development CPU; 3-12x on CPUs with wider vector units), ``opencv`` (``cv2.dnn``: the only path for
Caffe files, and for the quantised res10 TensorFlow graph OpenVINO cannot convert) and
``onnxruntime`` (ONNX Runtime's CPU provider: YuNet for ~30% less CPU than OpenVINO on AVX2
CPUs without VNNI, 15-20 % on a Zen 5) and ``auto`` (the backend ``run.py models --tune`` measured
fastest on this machine, see ``choice``; else OpenVINO where it imports, else OpenCV, with one
log line saying which). Settings are
per process (``configure``) because threads are a per-process budget.
"""

from streamer.inference.backend import (  # noqa: F401
    BACKENDS, InputSpec, Model, Settings, active_backend, configure, load, settings, thread_count)
