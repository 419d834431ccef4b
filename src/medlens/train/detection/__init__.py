"""Training detectors and instance segmenters (``task: detection``)."""
