"""Folium maps of predictions and text queries: pure functions from results to HTML.

Nothing here loads a model or touches the network: each function takes a
:class:`~geoapp.results.prediction.Prediction` (or two) and :class:`MapOptions` and returns a
``folium.Map`` or the HTML page of one. The UI, reports and notebooks all use the same code.

Where the browser gets Leaflet from is explicit (:class:`MapAssets`): ``MapAssets.local(prefix)``
loads every script and stylesheet from ``prefix`` (the app serves them from the machine, so an
offline page makes no request elsewhere); ``MapAssets.cdn()`` is for standalone files opened on
a machine with internet. Folium's own defaults (jQuery, Bootstrap, Font Awesome from CDNs) are
never used: markers are plain ``L.divIcon`` s and popups are bound with Leaflet directly.

Every text that can come from a user (file names, place names, queries, region labels) goes
through :func:`_text` (:func:`geoapp.ui.maps.elements.safe_text`) before reaching HTML, and through ``tojson``
before reaching JavaScript. The small Folium elements live in :mod:`geoapp.ui.maps.elements`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import folium
import numpy as np

from geoapp.results.prediction import Prediction
from geoapp.results.prediction import percent as _percent
from geoapp.ui.maps.elements import CountryOutlines as _CountryOutlines
from geoapp.ui.maps.elements import PointCloud as _PointCloud
from geoapp.ui.maps.elements import overlay_html as _overlay_html
from geoapp.ui.maps.elements import popup as _popup
from geoapp.ui.maps.elements import safe_text as _text
from geoapp.ui.maps.elements import tooltip as _tooltip

# File names inside a local asset folder (see geoapp/ui/assets.py, which fills it).
LEAFLET_JS = "leaflet.js"
LEAFLET_CSS = "leaflet.css"
HEAT_JS = "leaflet-heat.js"
BASEMAP_JS = "countries.js"  # defines window.GEOAPP_COUNTRIES (a GeoJSON FeatureCollection)

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
ESRI_IMAGERY_TILES = "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}"
ESRI_ATTRIBUTION = "Tiles &copy; Esri &mdash; Source: Esri, Maxar, Earthstar Geographics, and the GIS User Community"

TOP_COLOUR = "#b3261e"  # the most probable candidate
CANDIDATE_COLOUR = "#1f4e79"
REGION_COLOUR = "#6a1b9a"
SEA_COLOUR = "#c9dcee"  # offline basemap background
# Heatmap: light blue (little) -> dark red (most probable), readable on tiles and on the basemap.
HEAT_GRADIENT = {0.2: "#4575b4", 0.4: "#91bfdb", 0.6: "#fee090", 0.8: "#fc8d59", 1.0: "#a50026"}
# Diverging scheme for A - B (ColorBrewer RdBu ends): red where A fits better, blue where B does.
DIFF_POSITIVE = "#b2182b"
DIFF_NEGATIVE = "#2166ac"


@dataclass(frozen=True)
class MapAssets:
    """Where the map page loads Leaflet, the heatmap plugin and the offline basemap from."""

    leaflet_js: str
    leaflet_css: str
    heat_js: str
    basemap_js: str | None = None  # None: no offline country-outline layer

    @classmethod
    def local(cls, prefix: str) -> "MapAssets":
        """Everything from one folder URL (relative to the page, e.g. ``gradio_api/file=/…/``)."""
        base = prefix if prefix.endswith(("/", "=")) else prefix + "/"
        return cls(base + LEAFLET_JS, base + LEAFLET_CSS, base + HEAT_JS, base + BASEMAP_JS)

    @classmethod
    def cdn(cls) -> "MapAssets":
        """Public CDNs, for HTML files opened outside the app (needs internet; no offline basemap)."""
        return cls(
            leaflet_js="https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.js",
            leaflet_css="https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.css",
            heat_js="https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js",
        )


@dataclass(frozen=True)
class OfflineTileLayer:
    """Imagery tiles served by the app itself (the offline pyramid), at a page-relative URL."""

    url: str  # "{z}/{x}/{y}" template, relative to the page (the app's own server)
    attribution: str
    max_native_zoom: int  # deeper zooms enlarge these tiles


@dataclass(frozen=True)
class MapOptions:
    """How maps are drawn (the same for every map of a session)."""

    assets: MapAssets
    online_tiles: bool = True  # OpenStreetMap + Esri imagery base layers (requests to tile servers)
    offline_tiles: OfflineTileLayer | None = None  # the app's own imagery layer (shown in offline mode)
    height_px: int = 560
    heat_max_points: int = 4000  # heatmap points: the most probable ones ...
    heat_mass: float = 0.99  # ... holding this much of the probability


@dataclass(frozen=True)
class ReferencePoint:
    """A position to compare the candidates with: EXIF GPS, a claimed location ..."""

    label: str
    lat: float
    lon: float
    colour: str = "#111111"


@dataclass
class _Bounds:
    """Running south/west/north/east of everything drawn, to fit the view."""

    lats: list[float] = field(default_factory=list)
    lons: list[float] = field(default_factory=list)
    fallback: list[tuple[float, float]] = field(default_factory=list)  # used only when nothing else is drawn

    def add(self, lat: float, lon: float) -> None:
        if math.isfinite(lat) and math.isfinite(lon):
            self.lats.append(float(lat))
            self.lons.append(float(lon))

    def add_fallback(self, lat: float, lon: float) -> None:
        self.fallback.append((float(lat), float(lon)))

    def fit(self, pad_deg: float = 2.0) -> list[list[float]] | None:
        lats, lons = self.lats, self.lons
        if not lats:
            # A region alone (e.g. France with its overseas departments) would zoom out to half the
            # globe; it frames the view only when there are no markers.
            lats = [p[0] for p in self.fallback]
            lons = [p[1] for p in self.fallback]
        if not lats:
            return None
        south, north = min(lats), max(lats)
        west, east = min(lons), max(lons)
        # A little margin so markers are not on the edge; at least ~4 degrees so one point
        # does not zoom to street level.
        pad_lat = max(pad_deg, (north - south) * 0.12)
        pad_lon = max(pad_deg, (east - west) * 0.12)
        return [[max(-80.0, south - pad_lat), max(-180.0, west - pad_lon)],
                [min(84.0, north + pad_lat), min(180.0, east + pad_lon)]]


_PAGE_CSS = """
<style>
  .geoapp-banner {position:absolute; top:8px; left:50%; transform:translateX(-50%); z-index:1000;
    background:#b3261e; color:#fff; font:600 13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;
    padding:4px 10px; border-radius:4px; box-shadow:0 1px 4px rgba(0,0,0,.35); max-width:62%; text-align:center;}
  .geoapp-caveat {position:absolute; top:40px; left:50%; transform:translateX(-50%); z-index:1000;
    background:#fff3cd; color:#5c4400; border:1px solid #e0b400; font:12px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;
    padding:3px 8px; border-radius:4px; max-width:70%; text-align:center;}
  .geoapp-title {position:absolute; bottom:48px; left:10px; z-index:999; background:rgba(255,255,255,.92);
    font:600 13px/1.3 system-ui,-apple-system,"Segoe UI",sans-serif; padding:4px 8px; border-radius:4px;
    box-shadow:0 1px 3px rgba(0,0,0,.3); max-width:40%; overflow:hidden; text-overflow:ellipsis; white-space:nowrap;}
  .geoapp-legend {position:absolute; bottom:26px; right:10px; z-index:1000; background:rgba(255,255,255,.94);
    font:12px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif; padding:6px 9px; border-radius:4px;
    box-shadow:0 1px 3px rgba(0,0,0,.3); max-width:min(240px, 48%);}
  .geoapp-legend .bar {height:10px; margin:3px 0; border-radius:2px;}
  .geoapp-legend .row {display:flex; justify-content:space-between; color:#333;}
  .geoapp-pin {display:flex; align-items:center; justify-content:center; width:26px; height:26px;
    border-radius:50%; border:2px solid #fff; color:#fff; font:700 13px system-ui,sans-serif;
    box-shadow:0 1px 4px rgba(0,0,0,.55);}
  .geoapp-ref {display:flex; align-items:center; justify-content:center; width:22px; height:22px;
    transform:rotate(45deg); border:2px solid #fff; box-shadow:0 1px 4px rgba(0,0,0,.55);}
  .geoapp-ref span {transform:rotate(-45deg); color:#fff; font:700 11px system-ui,sans-serif;}
  .leaflet-popup-content {font:13px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;}
</style>
"""


# ---------------------------------------------------------------------------- map skeleton
def _base_map(options: MapOptions, *, offline_background: bool) -> folium.Map:
    """An empty map with our assets, base layers and page styles (no folium CDN defaults)."""
    fmap = folium.Map(location=[20.0, 0.0], zoom_start=2, min_zoom=1, tiles=None, control_scale=True,
                      world_copy_jump=True, prefer_canvas=False)
    fmap.default_js = [("leaflet", options.assets.leaflet_js)]
    fmap.default_css = [("leaflet_css", options.assets.leaflet_css)]
    root = fmap.get_root()
    root.header.add_child(folium.Element(_PAGE_CSS), name="geoapp_css")
    if offline_background or options.assets.basemap_js:
        root.header.add_child(folium.Element(f"<style>.leaflet-container {{background:{SEA_COLOUR};}}</style>"),
                              name="geoapp_sea")
    if options.online_tiles:
        folium.TileLayer(OSM_TILES, name="OpenStreetMap", attr=OSM_ATTRIBUTION, max_zoom=19).add_to(fmap)
        folium.TileLayer(ESRI_IMAGERY_TILES, name="Satellite (Esri World Imagery)", attr=ESRI_ATTRIBUTION,
                         max_zoom=19, show=False).add_to(fmap)
    if options.assets.basemap_js:
        _CountryOutlines(options.assets.basemap_js, "Country outlines (offline basemap)").add_to(fmap)
    if options.offline_tiles is not None:
        # An overlay (a checkbox), so the outlines underneath stay one click away.
        layer = options.offline_tiles
        folium.TileLayer(layer.url, name="Satellite (offline Blue Marble, from this app)", attr=_text(layer.attribution),
                         max_zoom=19, max_native_zoom=layer.max_native_zoom, overlay=True,
                         show=not options.online_tiles).add_to(fmap)
    return fmap


def _heat_layer(prediction: Prediction, options: MapOptions, name: str) -> folium.plugins.HeatMap | None:
    from folium.plugins import HeatMap

    if prediction.surface is None or len(prediction.surface) == 0:
        return None
    top = prediction.surface.top(options.heat_max_points, options.heat_mass)
    peak = float(top.probability.max()) if len(top) else 0.0
    if peak <= 0:
        return None
    data = np.column_stack([top.lat, top.lon, top.probability / peak]).round(5).tolist()
    layer = HeatMap(data, name=name, radius=14, blur=16, min_opacity=0.25, max_zoom=3, gradient=HEAT_GRADIENT)
    layer.default_js = [("leaflet-heat.js", options.assets.heat_js)]
    return layer


def _candidate_popup(prediction: Prediction, index: int, references: Sequence[ReferencePoint]) -> str:
    from geoapp.geo.distance import haversine_km

    candidate = prediction.candidates[index]
    rows = [
        f"<b>#{candidate.rank}</b> &nbsp; probability <b>{_percent(candidate.probability)}</b>",
        _text(candidate.place_label or "(no place name: open sea or remote area)"),
        f"{candidate.lat:.5f}, {candidate.lon:.5f}",
    ]
    if candidate.rank > 1:
        rows.append(f"{candidate.distance_to_top_km:,.0f} km from #1")
    for ref in references:
        distance = float(haversine_km(ref.lat, ref.lon, candidate.lat, candidate.lon))
        rows.append(f"{distance:,.0f} km from {_text(ref.label)}")
    if candidate.merged_points > 1:
        rows.append(f"<span style='color:#666'>{candidate.merged_points} nearby gallery points merged</span>")
    if prediction.random_weights:
        rows.append("<b style='color:#b3261e'>RANDOM WEIGHTS: not a real result</b>")
    return "<br>".join(rows)


def _add_candidates(fmap: folium.Map, prediction: Prediction, references: Sequence[ReferencePoint],
                    bounds: _Bounds, selected_rank: int | None, prefix: str = "", colour: str | None = None,
                    layer_name: str = "Candidates (numbered)") -> None:
    group = folium.FeatureGroup(name=_text(layer_name), show=True)
    shifts = _marker_shifts(prediction.candidates)
    for index, candidate in enumerate(prediction.candidates):
        fill = colour or (TOP_COLOUR if candidate.rank == 1 else CANDIDATE_COLOUR)
        ring = "box-shadow:0 0 0 3px #ffd54f,0 1px 4px rgba(0,0,0,.55);" if candidate.rank == selected_rank else ""
        dx, dy = shifts[index]
        icon = folium.DivIcon(
            html=f'<div class="geoapp-pin" style="background:{fill};{ring}">{_text(prefix)}{candidate.rank}</div>',
            icon_size=(26, 26), icon_anchor=(13 - dx, 13 - dy), class_name="geoapp-candidate",
        )
        if dx or dy:  # the pin is moved aside so its rank stays readable; a dot marks the exact place
            folium.CircleMarker([candidate.lat, candidate.lon], radius=3, color="#ffffff", weight=1, fill=True,
                                fill_color=fill, fill_opacity=1).add_to(group)
        # Leaflet stacks markers by screen y plus this offset: a large step keeps #1 above #2 above #3 ...
        marker = folium.Marker([candidate.lat, candidate.lon], icon=icon,
                               z_index_offset=(MAX_RANKED - min(candidate.rank, MAX_RANKED)) * 10_000)
        marker.add_child(_popup(_candidate_popup(prediction, index, references)))
        marker.add_child(_tooltip(f"{_text(prefix)}#{candidate.rank} · {_percent(candidate.probability)} · "
                                  f"{_text(candidate.place_label or '—')}"))
        marker.add_to(group)
        bounds.add(candidate.lat, candidate.lon)
    group.add_to(fmap)


MAX_RANKED = 200
SHIFT_PX = 20


def _marker_shifts(candidates: Sequence) -> list[tuple[int, int]]:
    """Pixel offsets for pins that would sit on a better-ranked one (within 1/40 of the candidates' spread).

    Pins are numbered, so a hidden rank is lost information: the later pins of a cluster are fanned out
    around the first, each with a dot at its true position.
    """
    if len(candidates) < 2:
        return [(0, 0)] * len(candidates)
    lats = [c.lat for c in candidates]
    lons = [c.lon for c in candidates]
    near = max(max(lats) - min(lats), max(lons) - min(lons), 0.5) / 40
    shifts: list[tuple[int, int]] = []
    for index, candidate in enumerate(candidates):
        crowd = sum(1 for other in candidates[:index]
                    if abs(other.lat - candidate.lat) < near and abs(other.lon - candidate.lon) < near)
        if crowd == 0:
            shifts.append((0, 0))
            continue
        angle = math.radians(-90 + 60 * (crowd - 1))  # first one above, then clockwise
        ring = 1 + (crowd - 1) // 6
        shifts.append((round(SHIFT_PX * ring * math.cos(angle)), round(SHIFT_PX * ring * math.sin(angle))))
    return shifts


def _add_references(fmap: folium.Map, prediction: Prediction, references: Sequence[ReferencePoint],
                    bounds: _Bounds) -> None:
    from geoapp.geo.distance import haversine_km

    if not references:
        return
    group = folium.FeatureGroup(name="Reference positions (EXIF GPS / claim)", show=True)
    top = prediction.top
    for ref in references:
        letter = _text(ref.label[:1].upper() or "R")
        icon = folium.DivIcon(
            html=f'<div class="geoapp-ref" style="background:{ref.colour}"><span>{letter}</span></div>',
            icon_size=(22, 22), icon_anchor=(11, 11), class_name="geoapp-reference",
        )
        lines = [f"<b>{_text(ref.label)}</b>", f"{ref.lat:.5f}, {ref.lon:.5f}"]
        if top is not None:
            distance = float(haversine_km(ref.lat, ref.lon, top.lat, top.lon))
            lines.append(f"{distance:,.0f} km from candidate #1")
            # A dashed line to the top candidate makes the disagreement visible at a glance.
            line = folium.PolyLine([[ref.lat, ref.lon], [top.lat, top.lon]], color=ref.colour, weight=2,
                                   dash_array="6 6", opacity=0.8)
            line.add_child(_tooltip(f"{_text(ref.label)} ↔ #1: {distance:,.0f} km"))
            line.add_to(group)
        marker = folium.Marker([ref.lat, ref.lon], icon=icon, z_index_offset=2000)
        marker.add_child(_popup("<br>".join(lines)))
        marker.add_child(_tooltip(_text(ref.label)))
        marker.add_to(group)
        bounds.add(ref.lat, ref.lon)
    group.add_to(fmap)


def _add_region(fmap: folium.Map, region: object | None, bounds: _Bounds) -> None:
    if region is None or not hasattr(region, "to_geojson"):
        return
    label = getattr(region, "label", "search region")
    feature = region.to_geojson(simplify_deg=0.01)
    layer = folium.GeoJson(
        feature, name=_text(f"Search region: {label}"),
        style_function=lambda _feature: {"color": REGION_COLOUR, "weight": 2.5, "dashArray": "8 5",
                                         "fillColor": REGION_COLOUR, "fillOpacity": 0.05},
    )
    layer.add_child(_tooltip(_text(f"Search restricted to: {label}")))
    layer.add_to(fmap)
    south, west, north, east = region.bounds
    if west <= east:  # a region across the antimeridian would make the fitted view span the globe
        # The view shows the whole region with the candidates, unless the region is continental or has far-away
        # parts (France with its overseas departments): then it frames the view only when there are no markers.
        add = bounds.add if (north - south) <= 40 and (east - west) <= 60 else bounds.add_fallback
        add(south, west)
        add(north, east)


def _add_evidence_layers(fmap: folium.Map, prediction: Prediction) -> None:
    """Shapes the family's evidence items contribute (``EvidenceItem.map_layers()``), drawn as given."""
    for item in getattr(prediction, "evidence", None) or []:
        for layer in getattr(item, "map_layers", lambda: [])():
            features = []
            for feature in layer.features:
                props = dict(feature.get("properties") or {})
                props["tooltip"] = _text(props.get("tooltip", ""))  # escaped: GeoJsonTooltip renders HTML
                features.append({**feature, "properties": props})
            if not features:
                continue
            shapes = folium.GeoJson(
                {"type": "FeatureCollection", "features": features}, name=_text(layer.name), show=layer.show,
                style_function=lambda f: {"color": f["properties"].get("stroke", "#1565c0"),
                                          "weight": f["properties"].get("weight", 1.5),
                                          "fillColor": f["properties"].get("fill", "#1565c0"),
                                          "fillOpacity": f["properties"].get("fill_opacity", 0.1)},
                tooltip=folium.GeoJsonTooltip(fields=["tooltip"], labels=False))
            shapes.add_to(fmap)


def _finish(fmap: folium.Map, bounds: _Bounds, *, title: str | None, random_weights: bool,
            legend_html: str | None, caveats: Sequence[str] = ()) -> folium.Map:
    root = fmap.get_root()
    if title:
        _overlay_html(root, f'<div class="geoapp-title">{_text(title)}</div>')
    if caveats:
        # The model family's caveat (e.g. SatWorld on a ground photo) stays with the map wherever it is shown.
        _overlay_html(root, f'<div class="geoapp-caveat" role="note">{_text(" ".join(caveats))}</div>')
    if random_weights:
        _overlay_html(root, '<div class="geoapp-banner" role="alert" title="This map comes from an untrained test '
                            'model and says nothing about where the photo was taken.">RANDOM WEIGHTS — NOT A REAL '
                            'RESULT</div>')
    if legend_html:
        _overlay_html(root, f'<div class="geoapp-legend">{legend_html}</div>')
    folium.LayerControl(collapsed=True, position="topright").add_to(fmap)
    fitted = bounds.fit()
    if fitted is not None:
        fmap.fit_bounds(fitted)
    return fmap


def _heat_legend(extra: str = "") -> str:
    stops = ", ".join(f"{colour} {int(stop * 100)}%" for stop, colour in sorted(HEAT_GRADIENT.items()))
    return ("<b>Probability heatmap</b>"
            f'<div class="bar" style="background:linear-gradient(to right, {stops})"></div>'
            '<div class="row"><span>less likely</span><span>most likely</span></div>' + extra)


# ---------------------------------------------------------------------------- public API
def prediction_map(prediction: Prediction, options: MapOptions, *, references: Sequence[ReferencePoint] = (),
                   selected_rank: int | None = None, title: str | None = None, fusion=None) -> folium.Map:
    """Candidates (numbered markers), probability heatmap, search region and reference positions;
    with ``fusion`` (a ``geoapp.ui.fusion_service.FusedMap``) also the fused map, its areas and clue layers."""
    fmap = _base_map(options, offline_background=bool(options.assets.basemap_js) and not options.online_tiles)
    bounds = _Bounds()
    heat = _heat_layer(prediction, options, "Probability heatmap")
    if heat is not None:
        heat.add_to(fmap)
    _add_region(fmap, prediction.region, bounds)
    _add_evidence_layers(fmap, prediction)
    areas = ""
    if fusion is not None:
        from geoapp.ui.maps.fusion_layers import add_fusion_layers

        areas = '<div style="margin-top:4px">' + add_fusion_layers(fmap, fusion, bounds, _text, _tooltip) + "</div>"
    _add_candidates(fmap, prediction, references, bounds, selected_rank)
    _add_references(fmap, prediction, references, bounds)
    return _finish(fmap, bounds, title=title, random_weights=prediction.random_weights, caveats=prediction.caveats,
                   legend_html=_heat_legend('<div style="margin-top:4px">numbered markers: distinct candidate '
                                            'places, <b style="color:#b3261e">#1</b> most probable</div>' + areas))


def difference_map(first: Prediction, second: Prediction, options: MapOptions, *, max_points: int = 3000,
                   labels: tuple[str, str] = ("A", "B")) -> folium.Map:
    """Surface A − surface B on the same candidate points, with a diverging red/blue scheme."""
    if first.surface is None or second.surface is None:
        raise ValueError("both results need a probability surface")
    if len(first.surface) != len(second.surface) or not (
            np.array_equal(first.surface.lat, second.surface.lat) and np.array_equal(first.surface.lon, second.surface.lon)):
        raise ValueError("the two results were scored on different candidate points (use the same region for both)")
    fmap = _base_map(options, offline_background=bool(options.assets.basemap_js) and not options.online_tiles)
    bounds = _Bounds()
    difference = first.surface.probability - second.surface.probability
    order = np.argsort(-np.abs(difference))[:max_points]
    scale = float(np.abs(difference[order]).max()) if len(order) else 0.0
    points = []
    if scale > 0:
        for i in order:
            value = float(difference[i])
            strength = abs(value) / scale
            if strength < 0.02:
                continue
            colour = DIFF_POSITIVE if value > 0 else DIFF_NEGATIVE
            better = labels[0] if value > 0 else labels[1]
            points.append([round(float(first.surface.lat[i]), 5), round(float(first.surface.lon[i]), 5), colour,
                           round(3 + 5 * strength, 2), round(0.25 + 0.7 * strength, 3),
                           f"fits {_text(better)} better by {abs(value) * 100:.3g} points of probability (%)"])
    _PointCloud(points, name=_text(f"Difference {labels[0]} − {labels[1]}")).add_to(fmap)
    region = first.region if first.region is not None else second.region
    _add_region(fmap, region, bounds)
    for prediction, label, colour in ((first, labels[0], DIFF_POSITIVE), (second, labels[1], DIFF_NEGATIVE)):
        _add_candidates(fmap, prediction, (), bounds, None, prefix=label, colour=colour,
                        layer_name=f"Top places for {label}")
    legend = ("<b>Difference of probabilities</b>"
              f'<div class="bar" style="background:linear-gradient(to right, {DIFF_NEGATIVE}, #f7f7f7, {DIFF_POSITIVE})"></div>'
              f'<div class="row"><span>fits {_text(labels[1])} better</span><span>fits {_text(labels[0])} better</span></div>'
              f"<div style='margin-top:4px'>dot size and opacity: size of the difference (max {scale * 100:.3g} %)</div>")
    return _finish(fmap, bounds, title=f"{labels[0]} − {labels[1]}",
                   random_weights=first.random_weights or second.random_weights, legend_html=legend,
                   caveats=sorted(set(first.caveats) | set(second.caveats)))


def render_html(fmap: folium.Map) -> str:
    """The complete, standalone HTML page of a map."""
    return fmap.get_root().render()


def prediction_map_html(prediction: Prediction, options: MapOptions, **kwargs) -> str:
    """:func:`prediction_map` as an HTML page."""
    return render_html(prediction_map(prediction, options, **kwargs))


def difference_map_html(first: Prediction, second: Prediction, options: MapOptions, **kwargs) -> str:
    """:func:`difference_map` as an HTML page."""
    return render_html(difference_map(first, second, options, **kwargs))


def placeholder_html(message: str, options: MapOptions) -> str:
    """An empty world map with a message (before the first result, or after an error)."""
    fmap = _base_map(options, offline_background=bool(options.assets.basemap_js) and not options.online_tiles)
    _overlay_html(fmap.get_root(), f'<div class="geoapp-title">{_text(message)}</div>')
    folium.LayerControl(collapsed=True, position="topright").add_to(fmap)
    return render_html(fmap)


def embed_html(page: str, height_px: int = 560, title: str = "map") -> str:
    """Wrap a map page in an ``<iframe srcdoc>`` (its scripts run; the host page's do not see them).

    The iframe has no ``src``: its relative asset URLs resolve against the host page's address,
    so a page served by the app loads Leaflet from the app itself.
    """
    # Braces, '$' and '`' become entities too: the host component treats its value as a template,
    # and the attribute decodes them back for the map page.
    source = html.escape(page, quote=True)
    for char, entity in (("{", "&#123;"), ("}", "&#125;"), ("$", "&#36;"), ("`", "&#96;")):
        source = source.replace(char, entity)
    return (f'<iframe class="geoapp-map" title="{_text(title)}" srcdoc="{source}" '
            f'style="width:100%;height:{int(height_px)}px;border:1px solid #d0d5dd;border-radius:6px;" '
            'loading="eager" referrerpolicy="no-referrer"></iframe>')


# ---------------------------------------------------------------------------- case map
CLAIM_AREA_COLOUR = "#e65100"


@dataclass(frozen=True)
class ClaimArea:
    """A claimed area to outline on a case map (a circle or a country, as a Region)."""

    label: str
    region: object  # geoapp.geo.regions.Region: to_geojson(), bounds
    colour: str = CLAIM_AREA_COLOUR


def _add_claim_area(fmap: folium.Map, area: ClaimArea, bounds: _Bounds) -> None:
    feature = area.region.to_geojson(simplify_deg=0.01)
    colour = area.colour
    layer = folium.GeoJson(
        feature, name=_text(f"Claimed area: {area.label}"),
        style_function=lambda _feature: {"color": colour, "weight": 3, "dashArray": "2 6",
                                         "fillColor": colour, "fillOpacity": 0.12},
    )
    layer.add_child(_tooltip(_text(f"Claimed: {area.label}")))
    layer.add_to(fmap)
    south, west, north, east = area.region.bounds
    if west <= east:  # the claim is framed with the markers, so both are in view
        bounds.add(south, west)
        bounds.add(north, east)


def case_map(options: MapOptions, *, prediction: Prediction | None = None, claims: Sequence[ClaimArea] = (),
             references: Sequence[ReferencePoint] = (), title: str | None = None) -> folium.Map:
    """One case on one map: claimed areas, reference positions (EXIF GPS, claimed point) and the
    numbered candidates (with heatmap) of one analysis, if any."""
    fmap = _base_map(options, offline_background=bool(options.assets.basemap_js) and not options.online_tiles)
    bounds = _Bounds()
    shown = prediction if prediction is not None else Prediction(source="")
    heat = _heat_layer(shown, options, "Probability heatmap") if prediction is not None else None
    if heat is not None:
        heat.add_to(fmap)
    for area in claims:
        _add_claim_area(fmap, area, bounds)
    _add_candidates(fmap, shown, references, bounds, None)
    _add_references(fmap, shown, references, bounds)
    legend = (f'<div><b style="color:{CLAIM_AREA_COLOUR}">dotted outline</b>: claimed area</div>'
              '<div>diamonds: EXIF GPS (E) / claimed point (C)</div>')
    if prediction is not None:
        legend = _heat_legend('<div style="margin-top:4px">numbered markers: candidates of the selected '
                              'analysis</div>' + legend)
    return _finish(fmap, bounds, title=title, random_weights=shown.random_weights, legend_html=legend,
                   caveats=shown.caveats)


def case_map_html(options: MapOptions, **kwargs) -> str:
    """:func:`case_map` as an HTML page."""
    return render_html(case_map(options, **kwargs))
