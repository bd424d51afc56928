"""The HTTP face of streamer: single-image page, /analyze, MJPEG, health and metrics."""
