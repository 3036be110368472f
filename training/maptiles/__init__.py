"""Training the map-tile family (``python -m training.maptiles.train``); see training/README.md."""
