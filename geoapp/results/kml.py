"""KML 2.2 from GeoJSON-like features (points and polygons), text XML-escaped (torch-free).

Shared by the case exports and the fused predictions; one folder per ``properties["kind"]``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from geoapp.results.textsafe import xml_text

KML_NS = "http://www.opengis.net/kml/2.2"


def _kml(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"


def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _kml(tag))
    if text is not None:
        element.text = xml_text(text)
    return element


def _coords(points: list) -> str:
    return " ".join(f"{round(x, 6)},{round(y, 6)},0" for x, y, *_ in points)


def _polygons(parent: ET.Element, geometry: dict[str, Any]) -> None:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry.get("coordinates", [])
    multi = sub(parent, "MultiGeometry")
    for rings in polygons:
        if not rings:
            continue
        polygon = sub(multi, "Polygon")
        sub(sub(sub(polygon, "outerBoundaryIs"), "LinearRing"), "coordinates", _coords(rings[0]))
        for hole in rings[1:]:
            sub(sub(sub(polygon, "innerBoundaryIs"), "LinearRing"), "coordinates", _coords(hole))


def _description(props: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in props.items() if v not in (None, ""))


def features_to_kml(title: str, description: str, features: list[dict], *,
                    folder_titles: dict[str, str] | None = None,
                    name_of: Callable[[dict], str] | None = None) -> str:
    """A KML document: each feature a Placemark (name, description, ExtendedData with every property)."""
    ET.register_namespace("", KML_NS)
    root = ET.Element(_kml("kml"))
    document = sub(root, "Document")
    sub(document, "name", title)
    sub(document, "description", description)
    folders: dict[str, ET.Element] = {}
    for feature in features:
        props = feature.get("properties") or {}
        kind = str(props.get("kind", "feature"))
        if kind not in folders:
            folders[kind] = sub(document, "Folder")
            sub(folders[kind], "name", (folder_titles or {}).get(kind, kind.replace("_", " ")))
        placemark = sub(folders[kind], "Placemark")
        sub(placemark, "name", name_of(props) if name_of else _default_name(props))
        sub(placemark, "description", _description(props))
        extended = sub(placemark, "ExtendedData")
        for key, value in props.items():
            data = sub(extended, "Data")
            data.set("name", xml_text(key))
            sub(data, "value", "" if value is None else str(value))
        geometry = feature["geometry"]
        if geometry["type"] == "Point":
            sub(sub(placemark, "Point"), "coordinates", _coords([geometry["coordinates"]]))
        else:
            _polygons(placemark, geometry)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _default_name(props: dict) -> str:
    if props.get("kind") == "credible_area":
        return f"{float(props['level']) * 100:g} % area: {float(props['area_km2']):,.0f} km² ({props.get('calibration', '')})"
    if props.get("kind") == "candidate":
        return f"#{props.get('rank')} {props.get('place') or ''} ({float(props.get('probability', 0)):.1%})"
    return str(props.get("name") or props.get("kind") or "feature")
