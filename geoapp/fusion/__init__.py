"""Evidence fusion: one map for the photo models' predictions and the analyst's clues, with credible areas.

Layer: above the model families (reads ``Prediction`` and family identities), below cases, engines, CLI
and UI; numpy/scipy/shapely only (no torch, no UI libraries).

Public API::

    from geoapp.fusion import fuse, parse_clue, Tempering, find_calibration
    posterior = fuse([prediction], [parse_clue("drive:left"), parse_clue("tz:offset=+01:00,time=2024-06-21T12:00")])
    area = posterior.area(0.9)        # CredibleArea: area_km2, parts, calibrated, to_feature() (GeoJSON)
    posterior.layers                  # one Layer per photo map / clue (values on posterior.grid)
    posterior.to_dict()               # JSON-ready: layers, conflicts, areas
"""

from geoapp.fusion.areas import LEVELS, CredibleArea
from geoapp.fusion.calibration import Calibration, find_calibration
from geoapp.fusion.clues import Clue, ClueError, proposed_from_exif
from geoapp.fusion.density import DEFAULT_KERNEL, Kernel, PointMass
from geoapp.fusion.grid import Grid
from geoapp.fusion.posterior import Conflict, Layer, PhotoMap, Posterior, fuse
from geoapp.fusion.spec import parse_clue, parse_clues
from geoapp.fusion.tempering import Tempering

__all__ = ["DEFAULT_KERNEL", "LEVELS", "Calibration", "Clue", "ClueError", "Conflict", "CredibleArea", "Grid",
           "Kernel", "Layer", "PhotoMap", "PointMass", "Posterior", "Tempering", "find_calibration", "fuse",
           "parse_clue", "parse_clues", "proposed_from_exif"]
