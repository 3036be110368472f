"""Calibration and evaluation sets for evidence fusion (``geoapp.fusion``): rendered held-out images with
known locations, and the coverage table of the calibrated credible areas."""
