"""Regional models ("Sweden or Switzerland", Engdahl & Heubi) from the analyst's own geotagged photos.

* ``sources``    photos of a folder (GPS from EXIF) or a CSV ``path,lat,lon`` -> records, with what was skipped
* ``features``   frozen features of each photo, cached by content hash (reused across methods and builds)
* ``fit``        the methods (presets), their tables (country boxes, cells, gallery), training and metrics
* ``build``      ``python -m training.regional build``: source -> checkpoint + manifest (variant ``regional:NAME``)
* ``reproduce``  ``python -m training.regional reproduce``: the paper's Table 1 on Sweden and Switzerland

The model, its heads and the locator live in :mod:`geoapp.families.regional`.
"""
