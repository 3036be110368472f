"""Area clues: exclude an area (a GeoJSON file or a drawn shape) and the search region (a hard clue).

Polygons are lon/lat (GeoJSON, RFC 7946: split at the antimeridian). Input is capped (``MAX_FILE_BYTES``,
``MAX_VERTICES``); invalid or self-intersecting rings are repaired with shapely's ``make_valid`` (the note
says so) and anything without area is refused. A cell's factor is the share of its (lon/lat) box inside
(region) or outside (exclude) the shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geoapp.fusion.clues.base import Clue, ClueError
from geoapp.fusion.grid import Grid

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_VERTICES = 200_000


def _polygonal(text: str, geometry: BaseGeometry) -> tuple[BaseGeometry, str]:
    note = ""
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        geometry = shapely.make_valid(geometry)
        note = f"repaired an invalid shape ({reason})"
    parts = [g for g in getattr(geometry, "geoms", [geometry]) if g.geom_type in ("Polygon", "MultiPolygon")]
    geometry = shapely.union_all(parts) if parts else shapely.Polygon()
    if geometry.is_empty or geometry.area <= 0:
        raise ClueError(text, "the shape encloses no area (give Polygon or MultiPolygon features)")
    return geometry, note


def read_shape(text: str, source: Path | dict) -> tuple[BaseGeometry, str]:
    """The (multi)polygon of a GeoJSON file or dict (Feature, FeatureCollection or geometry), checked."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ClueError(text, f"file {path} not found")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ClueError(text, f"{path.name} is {path.stat().st_size / 1e6:.0f} MB; at most "
                                  f"{MAX_FILE_BYTES // 2**20} MB (simplify the shape first)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ClueError(text, f"{path.name} is not GeoJSON ({error})") from error
    geometries = []
    try:
        items = data["features"] if data.get("type") == "FeatureCollection" else [data]
        for item in items:
            geom = item.get("geometry") if item.get("type") == "Feature" else item
            if geom:
                geometries.append(shape(geom))
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) as error:
        raise ClueError(text, f"not a GeoJSON geometry, Feature or FeatureCollection ({error})") from error
    if not geometries:
        raise ClueError(text, "no geometry in the GeoJSON")
    vertices = int(sum(shapely.get_num_coordinates(g) for g in geometries))
    if vertices > MAX_VERTICES:
        raise ClueError(text, f"{vertices:,} vertices; at most {MAX_VERTICES:,} (simplify the shape first)")
    geometry = shapely.GeometryCollection(geometries) if len(geometries) > 1 else geometries[0]
    if not np.all(np.isfinite(shapely.get_coordinates(geometry))):
        raise ClueError(text, "coordinates must be finite numbers")
    return _polygonal(text, geometry)


def inside_share(geometry: BaseGeometry, grid: Grid) -> np.ndarray:
    """Share of each cell's lon/lat box inside ``geometry`` (only cells touching its bounds are cut)."""
    out = np.zeros(len(grid))
    west, south, east, north = geometry.bounds
    near = np.flatnonzero((grid.east > west) & (grid.west < east) & (grid.north > south) & (grid.south < north))
    if len(near) == 0:
        return out
    boxes = shapely.box(grid.west[near], grid.south[near], grid.east[near], grid.north[near])
    shapely.prepare(geometry)
    inside = shapely.contains(geometry, boxes)
    out[near[inside]] = 1.0
    cut = near[~inside & shapely.intersects(geometry, boxes)]
    if len(cut):
        cut_boxes = boxes[~inside & shapely.intersects(geometry, boxes)]
        out[cut] = shapely.area(shapely.intersection(cut_boxes, geometry)) / shapely.area(cut_boxes)
    return out


@dataclass(frozen=True)
class ExcludeClue(Clue):
    geometry: Any = field(default=None, compare=False)
    note: str = ""

    kind = "exclude"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "ExcludeClue":
        if not body.strip():
            raise ClueError(text, "needs a GeoJSON file: exclude:FILE.geojson")
        geometry, note = read_shape(text, Path(body.strip()))
        return cls(text=text, source=source, geometry=geometry, note=note)

    @classmethod
    def from_geojson(cls, data: dict, label: str = "drawn area", source: str = "analyst") -> "ExcludeClue":
        text = f"exclude:{label}"
        geometry, note = read_shape(text, data)
        return cls(text=text, source=source, geometry=geometry, note=note)

    def factor(self, grid: Grid) -> np.ndarray:
        return 1.0 - inside_share(self.geometry, grid)

    def describe(self) -> str:
        return "not inside the excluded area" + (f" ({self.note})" if self.note else "")

    def parameters(self) -> dict:
        return {"note": self.note, "bounds": list(self.geometry.bounds)}


@dataclass(frozen=True)
class RegionClue(Clue):
    region: Any = field(default=None, compare=False)  # geoapp.geo.regions.Region

    kind = "region"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "RegionClue":
        from geoapp.geo.regions import RegionError, parse_region

        try:
            region = parse_region(body.strip())
        except RegionError as error:
            raise ClueError(text, str(error)) from error
        return cls(text=text, source=source, region=region)

    @cached_property
    def _geometry(self) -> BaseGeometry:
        return self.region.geometry

    def factor(self, grid: Grid) -> np.ndarray:
        return inside_share(self._geometry, grid)

    def describe(self) -> str:
        return f"inside {self.region.label}"

    def parameters(self) -> dict:
        return {"region": self.region.key}
