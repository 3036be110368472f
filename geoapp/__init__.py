"""geoapp: an image-geolocation workbench.

Public API::

    from geoapp import Geolocator, parse_region
    locator = Geolocator.load()                 # GeoCLIP with pretrained weights
    result = locator.predict("photo.jpg", top_k=5, region="FR", tencrop=False)
    result.candidates[0].lat, result.candidates[0].place, result.to_dict()

Imports are lazy so that ``import geoapp`` stays cheap (no torch until a model is needed).
"""

from __future__ import annotations

from geoapp.version import __version__

__all__ = ["Geolocator", "Prediction", "Candidate", "parse_region", "Region", "__version__"]


def __getattr__(name: str):
    if name == "Geolocator":
        from geoapp.api import Geolocator

        return Geolocator
    if name in ("Prediction", "Candidate"):
        from geoapp.results import prediction

        return getattr(prediction, name)
    if name in ("parse_region", "Region"):
        from geoapp.geo import regions

        return getattr(regions, name)
    raise AttributeError(f"module 'geoapp' has no attribute {name!r}")
