"""The fused map on a folium map: the fused density, the credible areas (filled, with km²) and each clue
as its own layer (all listed in the layer control). Used by ``render.prediction_map(fusion=...)``.

Paths carry CSS classes (``geoapp-fused-cell``, ``geoapp-area geoapp-area-90``, ``geoapp-clue-layer``) so
tests and styles can find them.
"""

from __future__ import annotations

import folium
import numpy as np

from geoapp.fusion.areas import mass_above

AREA_COLOURS = {0.5: "#7f0000", 0.8: "#d7301f", 0.9: "#fc8d59", 0.95: "#fdd49e"}
CLUE_COLOURS = ("#1565c0", "#2e7d32", "#6a1b9a", "#00838f", "#5d4037", "#ad1457", "#37474f")
FUSED_CELLS = 600  # densest cells drawn as the fused map (the areas show the rest)
FUSED_RAMP = ("#fff5eb", "#fdbe85", "#fd8d3c", "#d94701", "#8c2d04")


def _simplified(geometry: dict, tolerance_deg: float = 0.01) -> dict:
    """Fewer vertices for the browser (the stored areas keep the exact cell union)."""
    import json

    import shapely
    from shapely.geometry import shape

    if not geometry.get("coordinates"):
        return geometry
    return json.loads(shapely.to_geojson(shape(geometry).simplify(tolerance_deg, preserve_topology=True)))


def _fused_cells(posterior) -> dict:
    grid = posterior.grid
    density = posterior.density_km2
    inside = np.flatnonzero(mass_above(density, posterior.mass) < 0.99)
    chosen = inside[np.argsort(-density[inside], kind="stable")[:FUSED_CELLS]]
    peak = float(density[chosen].max()) if len(chosen) else 1.0
    features = []
    for i in chosen:
        share = float(density[i]) / peak if peak > 0 else 0.0
        colour = FUSED_RAMP[min(len(FUSED_RAMP) - 1, int(share * len(FUSED_RAMP)))]
        w, s, e, n = (round(float(v), 5) for v in (grid.west[i], grid.south[i], grid.east[i], grid.north[i]))
        features.append({"type": "Feature", "properties": {"fill": colour},
                         "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}})
    return {"type": "FeatureCollection", "features": features}


def add_fusion_layers(fmap: folium.Map, fused, bounds, text, tooltip) -> str:
    """Draw one :class:`geoapp.ui.fusion_service.FusedMap`; returns the legend lines (HTML).

    ``text`` escapes user text and ``tooltip`` binds a tooltip (render's helpers, passed in to keep one copy).
    """
    posterior = fused.posterior
    cells = folium.GeoJson(_fused_cells(posterior), name="Fused map (photo × clues)",
                           style_function=lambda f: {"stroke": False, "fillColor": f["properties"]["fill"],
                                                     "fillOpacity": 0.55, "className": "geoapp-fused-cell"})
    cells.add_child(tooltip("Fused map: the photo map times every clue (darker = more likely)"))
    cells.add_to(fmap)
    for k, layer in enumerate(l for l in posterior.layers if l.kind != "photo"):
        colour = CLUE_COLOURS[k % len(CLUE_COLOURS)]
        feature = posterior.layer_feature(layer)
        feature = {**feature, "geometry": _simplified(feature["geometry"], 0.05)}
        shape = folium.GeoJson(feature, name=text(f"Clue: {layer.name}"), show=True,
                               style_function=lambda _f, c=colour: {"color": c, "weight": 1.5, "dashArray": "4 4",
                                                                    "fillColor": c, "fillOpacity": 0.04,
                                                                    "className": "geoapp-clue-layer"})
        share = layer.share_of_globe(posterior.grid)
        shape.add_child(tooltip(text(f"{layer.name}: {layer.description}; leaves {share:.2%} of the globe")))
        shape.add_to(fmap)
    lines = []
    for area in sorted(fused.areas, key=lambda a: -a.level):  # widest first: the narrower ones lie on top
        colour = AREA_COLOURS.get(area.level, "#d7301f")
        percent = f"{area.level * 100:g}"
        layer = folium.GeoJson({"type": "Feature", "geometry": _simplified(area.geometry), "properties": {}},
                               name=text(f"{percent} % area: {area.area_km2:,.0f} km²"),
                               style_function=lambda _f, c=colour, p=percent: {
                                   "color": c, "weight": 1.5, "fillColor": c, "fillOpacity": 0.25,
                                   "className": f"geoapp-area geoapp-area-{p}"})
        layer.add_child(tooltip(text(area.summary())))
        layer.add_to(fmap)
        if area.geometry.get("coordinates"):
            import shapely
            from shapely.geometry import shape as to_shape

            west, south, east, north = shapely.bounds(to_shape(area.geometry))
            if area.level == 0.9 and east - west < 300:
                bounds.add(south, west)
                bounds.add(north, east)
        lines.append(f'<div><span style="color:{colour}">■</span> {text(area.summary())}</div>')
    return "<b>Credible areas</b>" + "".join(reversed(lines))
