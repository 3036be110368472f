"""Static inline SVG maps for self-contained reports (no tiles, scripts or fonts).

Equirectangular frame: x grows with longitude, y with latitude southwards; for regional
frames longitudes are shrunk by cos(mid latitude) so shapes keep roughly true
proportions.  Country outlines come from :mod:`geoapp.geo.countries`, simplified to
about one pixel and clipped to the frame.  All text is escaped.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geoapp.geo.countries import get_country_index
from geoapp.results.textsafe import display_text

WORLD = (-90.0, -180.0, 90.0, 180.0)  # south, west, north, east
COLOURS = {"claim": "#d97706", "exif_gps": "#2563eb", "candidate": "#dc2626", "top": "#991b1b"}


@dataclass(frozen=True)
class MapPoint:
    lat: float
    lon: float
    kind: str  # claim | exif_gps | candidate
    label: str
    weight: float = 0.0  # candidates: probability
    rank: int | None = None
    series: int = 0  # candidates: which analysis (its own marker shape and letter: A1, B1 ...)


SERIES_SHAPES = ("circle", "square", "diamond", "triangle")


def series_letter(series: int) -> str:
    """A, B, ... Z, AA, AB ...: the label of an analysis on the map and in its legend."""
    letters = ""
    series += 1
    while series:
        series, rest = divmod(series - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _candidate_marker(x: float, y: float, radius: float, shape: str, attrs: str, tip: str) -> str:
    if shape == "square":
        side = 2 * radius
        return f'<rect x="{x - radius:.1f}" y="{y - radius:.1f}" width="{side:.1f}" height="{side:.1f}" {attrs}>{tip}</rect>'
    if shape == "diamond":
        r = radius * 1.3
        return (f'<path d="M{x:.1f} {y - r:.1f}L{x + r:.1f} {y:.1f}L{x:.1f} {y + r:.1f}L{x - r:.1f} {y:.1f}Z" '
                f"{attrs}>{tip}</path>")
    if shape == "triangle":
        r = radius * 1.3
        return (f'<path d="M{x:.1f} {y + r:.1f}L{x + r:.1f} {y - r * 0.7:.1f}L{x - r:.1f} {y - r * 0.7:.1f}Z" '
                f"{attrs}>{tip}</path>")
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" {attrs}>{tip}</circle>'


@dataclass(frozen=True)
class Frame:
    south: float
    west: float
    north: float
    east: float
    width: float
    height: float
    kx: float

    @classmethod
    def fit(cls, bounds: tuple[float, float, float, float], max_width: int = 900, max_height: int = 520) -> "Frame":
        south, west, north, east = bounds
        kx = 1.0 if bounds == WORLD else max(0.2, math.cos(math.radians((south + north) / 2)))
        scale = min(max_width / ((east - west) * kx), max_height / (north - south))
        return cls(south, west, north, east, (east - west) * kx * scale, (north - south) * scale, kx)

    @property
    def scale(self) -> float:
        return self.width / ((self.east - self.west) * self.kx)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon - self.west) * self.kx * self.scale, (self.north - lat) * self.scale

    def contains(self, lat: float, lon: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lon <= self.east


def frame_around(points: list[tuple[float, float]], pad: float = 0.25, min_span_deg: float = 0.5) -> tuple[float, ...]:
    """Bounds (south, west, north, east) around (lat, lon) points, padded, clamped to the world."""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    span_lat = max(north - south, min_span_deg)
    span_lon = max(east - west, min_span_deg)
    mid_lat, mid_lon = (south + north) / 2, (west + east) / 2
    half_lat, half_lon = span_lat * (0.5 + pad), span_lon * (0.5 + pad)
    return (max(-90.0, mid_lat - half_lat), max(-180.0, mid_lon - half_lon),
            min(90.0, mid_lat + half_lat), min(180.0, mid_lon + half_lon))


def _path(geometry: BaseGeometry, frame: Frame) -> str:
    parts = []
    for polygon in shapely.get_parts(geometry):
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        for ring in (polygon.exterior, *polygon.interiors):
            coords = np.asarray(ring.coords)
            if len(coords) < 3:
                continue
            xs = (coords[:, 0] - frame.west) * frame.kx * frame.scale
            ys = (frame.north - coords[:, 1]) * frame.scale
            parts.append("M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in zip(xs, ys)) + "Z")
    return "".join(parts)


@functools.lru_cache(maxsize=8)
def _outlines(frame: Frame) -> str:
    """Country outline paths for a frame (cached: the world map is the same in every report)."""
    tolerance = (frame.east - frame.west) / frame.width  # about one pixel, in degrees
    clip = box(frame.west, frame.south, frame.east, frame.north)
    index = get_country_index()
    countries = index.countries if (frame.south, frame.west, frame.north, frame.east) == WORLD else index.intersecting(clip)
    paths = []
    for country in countries:
        geometry = shapely.clip_by_rect(country.geometry, frame.west, frame.south, frame.east, frame.north)
        geometry = shapely.simplify(geometry, tolerance, preserve_topology=False)
        d = _path(geometry, frame)
        if d:
            paths.append(d)
    return f'<path class="land" d="{"".join(paths)}"/>'


def _area(geometry: BaseGeometry, frame: Frame) -> str:
    clipped = shapely.clip_by_rect(geometry, frame.west, frame.south, frame.east, frame.north)
    tolerance = (frame.east - frame.west) / frame.width / 2
    d = _path(shapely.simplify(clipped, tolerance, preserve_topology=False), frame)
    return f'<path class="claim-area" d="{d}"/>' if d else ""


def render_map(frame_bounds: tuple[float, float, float, float], points: list[MapPoint],
               areas: list[BaseGeometry] | None = None, heat: dict[str, Any] | None = None,
               caption: str = "", max_width: int = 900, max_height: int = 520) -> str:
    """An ``<svg>`` element: land, claimed areas, probability dots, then points on top."""
    frame = Frame.fit(tuple(float(v) for v in frame_bounds), max_width, max_height)
    body = [f'<rect class="sea" x="0" y="0" width="{frame.width:.1f}" height="{frame.height:.1f}"/>', _outlines(frame)]
    for geometry in areas or []:
        body.append(_area(geometry, frame))
    if heat and heat.get("probability"):
        probs = np.asarray(heat["probability"], dtype=np.float64)
        top = float(probs.max()) or 1.0
        dots = []
        for lat, lon, p in zip(heat["lat"][:1500], heat["lon"][:1500], probs[:1500]):
            if frame.contains(lat, lon):
                x, y = frame.xy(lat, lon)
                dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill-opacity="{0.1 + 0.8 * p / top:.2f}"/>')
        body.append(f'<g class="heat">{"".join(dots)}</g>')
    several = len({p.series for p in points if p.kind == "candidate"}) > 1
    for point in sorted(points, key=lambda p: (p.kind == "candidate", -(p.rank or 0), p.series)):
        if not frame.contains(point.lat, point.lon):
            continue
        x, y = frame.xy(point.lat, point.lon)
        tip = f"<title>{html.escape(display_text(point.label))}</title>"
        colour = COLOURS["top"] if point.kind == "candidate" and point.rank == 1 else COLOURS.get(point.kind, "#000")
        if point.kind == "exif_gps":
            body.append(f'<path d="M{x:.1f} {y - 8:.1f}L{x + 7:.1f} {y + 5:.1f}L{x - 7:.1f} {y + 5:.1f}Z" '
                        f'fill="{colour}" stroke="#fff" stroke-width="1.5">{tip}</path>')
        elif point.kind == "claim":
            body.append(f'<path d="M{x - 7:.1f} {y:.1f}H{x + 7:.1f}M{x:.1f} {y - 7:.1f}V{y + 7:.1f}" '
                        f'stroke="{colour}" stroke-width="3">{tip}</path>')
        else:
            radius = 3 + 9 * math.sqrt(max(point.weight, 0.0))
            shape = SERIES_SHAPES[point.series % len(SERIES_SHAPES)]
            attrs = f'fill="{colour}" fill-opacity="0.75" stroke="#fff" stroke-width="1"'
            body.append(_candidate_marker(x, y, radius, shape, attrs, tip))
            if point.rank is not None and point.rank <= 3:
                # With several analyses each rank says whose it is: A1 is analysis A's top candidate.
                rank = f"{series_letter(point.series)}{point.rank}" if several else str(point.rank)
                body.append(f'<text x="{x + radius + 2:.1f}" y="{y + 4:.1f}">{rank}</text>')
    label = html.escape(display_text(caption))
    # No xmlns: inline SVG in HTML5 does not need one, and the report then names no URL at all.
    return (f'<svg class="map" role="img" aria-label="{label}" '
            f'viewBox="0 0 {frame.width:.1f} {frame.height:.1f}" width="{frame.width:.0f}" height="{frame.height:.0f}">'
            f"<title>{label}</title>{''.join(body)}</svg>")


MAP_CSS = """
svg.map { max-width: 100%; height: auto; border: 1px solid #94a3b8; background: #e0f2fe; }
svg.map .sea { fill: #e0f2fe; }
svg.map .land { fill: #f1f5f9; stroke: #64748b; stroke-width: 0.6; }
svg.map .claim-area { fill: #f59e0b; fill-opacity: 0.25; stroke: #d97706; stroke-width: 1.5; }
svg.map .heat circle { fill: #7c3aed; }
svg.map text { font: bold 12px sans-serif; fill: #111827; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
"""
