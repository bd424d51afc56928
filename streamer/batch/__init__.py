"""Folders of images to a CSV: discovery, workers, the CSV writer and resume."""
