"""Adapters to the outside world of pixels: frame sources, image decoding, overlay drawing, video/window output, the model store."""
