"""streamer: real-time face analytics on CPU with OpenCV DNN."""

__version__ = "0.1.0"
