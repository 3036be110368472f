"""HTML report, GeoJSON, KML and CSV exports."""

from __future__ import annotations

import base64
import csv
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import shapely.geometry

from geoapp.cases import CaseStore, render_html, to_csv, to_geojson, to_kml

from .conftest import populated_case

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "area", "base", "col", "embed", "param", "track"}
SVG_LEAVES = {"path", "circle", "rect"}  # self-closed inside SVG


class StrictHTML(HTMLParser):
    """Checks nesting, and collects every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.loads: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "xlink:href", "poster", "background"):
                self.loads.append((tag, name, value or ""))
            if name.startswith("on"):
                self.errors.append(f"event handler attribute {name} on <{tag}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href"):
                self.loads.append((tag, name, value or ""))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()


def _evil_case(store: CaseStore) -> str:
    case_id = populated_case(store, title=f"Title {EVIL}", actor=f"mallory {EVIL}")
    store.add_note(case_id, f"Note {EVIL}\nsecond line", actor="x")
    store.add_claim(case_id, "Kharkiv", source=f"javascript:alert(1) {EVIL}", actor="x")
    return case_id


def test_html_report_is_self_contained_escaped_and_well_formed(store: CaseStore):
    case_id = _evil_case(store)
    html = render_html(store, case_id)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower() and "onerror=" not in html.lower().replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    parser = StrictHTML()
    parser.feed(html)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert all(value.startswith("data:image/") for _, _, value in parser.loads), parser.loads
    assert "<a " not in html and "@import" not in html and "url(" not in html
    assert re.findall(r"\w+://", html) == ["https://"]  # the only URL is the claim's source, as text
    assert re.search(r'http-equiv="Content-Security-Policy" content="default-src \'none\'', html)
    # The embedded images are real images.
    from PIL import Image

    uris = [value for _, _, value in parser.loads]
    assert sum(u.startswith("data:image/jpeg") for u in uris) == 2 and sum(u.startswith("data:image/png") for u in uris) == 2
    for uri in uris:
        Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).verify()
    for needle in ("Evidence integrity", "contradicted", "Audit trail", "Content fingerprint", "Backbone weights",
                   "sha256", "@media print", "<svg"):
        assert needle.lower() in html.lower(), needle
    case = store.get_case(case_id)
    for item in case.evidence:
        assert item.sha256 in html
    assert case.analyses[0].weights_sha256 in html


def _check_position(position, where):
    assert isinstance(position, list) and len(position) in (2, 3), where
    lon, lat = position[:2]
    assert -180 <= lon <= 180 and -90 <= lat <= 90, where


def _check_geometry(geometry):
    kind = geometry["type"]
    coords = geometry["coordinates"]
    if kind == "Point":
        _check_position(coords, kind)
        return
    polygons = [coords] if kind == "Polygon" else coords
    assert kind in ("Polygon", "MultiPolygon")
    for rings in polygons:
        for ring in rings:
            assert len(ring) >= 4 and ring[0] == ring[-1], "rings are closed"
            for position in ring:
                _check_position(position, kind)
    assert shapely.geometry.shape(geometry).is_valid


def test_geojson_is_valid_and_lon_lat_ordered(store: CaseStore):
    case_id = _evil_case(store)
    data = to_geojson(store, case_id)
    assert data["type"] == "FeatureCollection" and isinstance(data["features"], list)
    kinds = [f["properties"]["kind"] for f in data["features"]]
    assert kinds.count("claim") == 2 and kinds.count("claim_area") == 2 and kinds.count("exif_gps") == 2
    assert kinds.count("candidate") == 6
    for feature in data["features"]:
        assert feature["type"] == "Feature" and isinstance(feature["properties"], dict)
        _check_geometry(feature["geometry"])
    claim = next(f for f in data["features"] if f["properties"]["kind"] == "claim")
    assert claim["geometry"]["coordinates"] == [36.25, 49.98]  # lon, lat
    gps = next(f for f in data["features"] if f["properties"]["kind"] == "exif_gps")
    assert 11 < gps["geometry"]["coordinates"][0] < 12 and 43 < gps["geometry"]["coordinates"][1] < 44
    top = [f for f in data["features"] if f["properties"]["kind"] == "candidate" and f["properties"]["rank"] == 1]
    assert top[0]["geometry"]["coordinates"] == [30.52, 50.45] and top[0]["properties"]["probability"] == 0.5
    area = next(f for f in data["features"] if f["properties"]["kind"] == "claim_area")
    assert shapely.geometry.shape(area["geometry"]).contains(shapely.geometry.Point(36.25, 49.98))


def test_kml_parses_and_has_placemarks(store: CaseStore):
    case_id = _evil_case(store)
    text = to_kml(store, case_id)
    root = ET.fromstring(text.encode("utf-8"))
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    placemarks = root.findall(".//k:Placemark", ns)
    assert len(placemarks) == len(to_geojson(store, case_id)["features"])
    names = [p.findtext("k:name", namespaces=ns) for p in placemarks]
    assert any(n.startswith("Claim: Kharkiv") for n in names) and any("EXIF GPS" in n for n in names)
    for point in root.findall(".//k:Point/k:coordinates", ns):
        lon, lat, _ = map(float, point.text.split(","))
        assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert root.findall(".//k:Polygon", ns)
    assert "<script" not in text  # user text is escaped by ElementTree
    assert EVIL in "".join(p.findtext("k:description", namespaces=ns) or "" for p in placemarks)


def test_csv_of_analyses(store: CaseStore):
    case_id = populated_case(store)
    evidence = store.get_case(case_id).evidence[0]
    # a formula-looking evidence name is neutralised for spreadsheets
    from .conftest import fake_prediction, png_bytes

    evil = store.add_evidence(case_id, png_bytes(5), "=HYPERLINK(\"evil\").png", actor="a")
    store.record_analysis(case_id, evil.id, fake_prediction(evil.sha256, [(1.0, 2.0, 1.0)]), actor="a")
    rows = list(csv.DictReader(io.StringIO(to_csv(store, case_id))))
    assert len(rows) == 3 + 3 + 1
    first = [r for r in rows if r["evidence_id"] == evidence.id]
    assert [r["rank"] for r in first] == ["1", "2", "3"] and first[0]["place"]
    assert first[0]["evidence_sha256"] == evidence.sha256 and first[0]["weights_sha256"] == "ab" * 32
    assert rows[-1]["evidence_name"].startswith("'=HYPERLINK")
