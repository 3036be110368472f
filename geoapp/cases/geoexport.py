"""GeoJSON, KML and CSV exports of a case: claim, EXIF GPS, model candidates and credible areas.

Credible areas are each analysis times the case's current clues (:func:`geoapp.cases.clues.analysis_areas`),
as polygons with ``level``, ``area_km2``, ``parts``, ``calibrated`` and ``clues``, like ``predict --format geojson``.

Coordinates are WGS84; GeoJSON and KML write longitude first, as their specs require.
The CSV has one row per candidate of every analysis, and guards text cells against
spreadsheet formula injection (:func:`geoapp.results.textsafe.csv_cell`); KML text goes through
:func:`geoapp.results.textsafe.xml_text` (characters XML forbids would make the file unreadable).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import shapely

from geoapp.results.kml import features_to_kml
from geoapp.results.textsafe import csv_cell

from .claims import claim_region
from .clues import analysis_areas, latest_claim_point
from .figures import analysis_caveats
from .models import Case, Claim
from .service import CaseStore

COUNTRY_SIMPLIFY_DEG = 0.02  # keeps a country claim to a few thousand vertices


def _claim_area(claim: Claim) -> dict[str, Any]:
    """GeoJSON geometry of the claimed area (circle polygon or simplified country)."""
    region = claim_region(claim.region_key)
    geometry = region.geometry
    if claim.kind == "country":
        geometry = shapely.simplify(geometry, COUNTRY_SIMPLIFY_DEG, preserve_topology=True)
    return json.loads(shapely.to_geojson(shapely.set_precision(geometry, 1e-6)))


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(float(lon), 6), round(float(lat), 6)]}


def geo_features(case: Case) -> list[dict[str, Any]]:
    """Claim (point and area), EXIF GPS and candidate features of a loaded case."""
    features: list[dict[str, Any]] = []
    names = {e.id: e.original_name for e in case.evidence}
    for claim in case.claims:
        props = {"kind": "claim", "claim_id": claim.id, "label": claim.label, "place_text": claim.place_text,
                 "claim_kind": claim.kind, "radius_km": claim.radius_km, "country_code": claim.country_code,
                 "claimed_time": claim.claimed_time, "source": claim.source, "region": claim.region_key}
        if claim.lat is not None and claim.lon is not None:
            features.append({"type": "Feature", "geometry": _point(claim.lat, claim.lon), "properties": dict(props)})
        features.append({"type": "Feature", "geometry": _claim_area(claim), "properties": {**props, "kind": "claim_area"}})
    for item in case.evidence:
        if item.gps is not None:
            features.append({"type": "Feature", "geometry": _point(*item.gps), "properties": {
                "kind": "exif_gps", "evidence_id": item.id, "evidence_sha256": item.sha256, "name": item.original_name,
                "capture_time": (item.exif or {}).get("capture_time")}})
    for analysis in case.analyses:
        for c in analysis.candidates or []:
            features.append({"type": "Feature", "geometry": _point(c["lat"], c["lon"]), "properties": {
                "kind": "candidate", "analysis_id": analysis.id, "evidence_id": analysis.evidence_id,
                "evidence_sha256": analysis.evidence_sha256, "evidence_name": names.get(analysis.evidence_id, ""),
                "rank": c["rank"], "probability": c["probability"], "place": c.get("place", ""),
                "country_code": c.get("country_code", ""), "model": analysis.model, "backbone": analysis.backbone,
                "random_weights": analysis.random_weights, "analysed_at": analysis.finished_at.isoformat()}})
    features.extend(area_features(case, names))
    return features


def area_features(case: Case, names: dict[str, str]) -> list[dict[str, Any]]:
    """The credible areas of every analysis fused with the case's clues (largest level first, so a map
    draws the smaller areas on top)."""
    claim, point = latest_claim_point(case)
    features = []
    for analysis in case.analyses:
        areas = analysis_areas(analysis, case.clues, point)
        if areas is None:
            continue
        for area in sorted(areas.areas, key=lambda a: -a.level):
            feature = area.to_feature()
            feature["properties"].update({
                "source": names.get(analysis.evidence_id, analysis.evidence_id), "analysis_id": analysis.id,
                "evidence_id": analysis.evidence_id, "model": analysis.model,
                "random_weights": analysis.random_weights, "conflicts": list(areas.conflicts)})
            features.append(feature)
    return features


def to_geojson(store: CaseStore, case_id: str) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (RFC 7946) of the case."""
    case = store.get_case(case_id)
    return {"type": "FeatureCollection", "name": case.title,
            "geoapp": {"case_id": case.id, "title": case.title, "status": case.status},
            "features": geo_features(case)}


# ---------------------------------------------------------------------------- KML
def to_kml(store: CaseStore, case_id: str) -> str:
    """KML 2.2 document with one folder per kind of feature (text is XML-escaped by ElementTree)."""
    case = store.get_case(case_id)
    titles = {"claim": "Claim", "claim_area": "Claimed area", "exif_gps": "EXIF GPS", "candidate": "Model candidates",
              "credible_area": "Credible areas (analysis × clues)"}

    def name_of(props: dict[str, Any]) -> str:
        if props["kind"] == "candidate":
            return f"#{props['rank']} {props['place'] or ''} ({props['probability']:.1%}) — {props['evidence_name']}"
        if props["kind"] == "credible_area":
            return (f"{props['level'] * 100:g} % area: {props['area_km2']:,.0f} km² — {props['source']} "
                    f"({props['calibration']})")
        if props["kind"] == "exif_gps":
            return f"EXIF GPS of {props['name']}"
        return f"Claim: {props['label']}"

    return features_to_kml(case.title, f"geoapp case {case.id} ({case.status})", geo_features(case),
                           folder_titles=titles, name_of=name_of)


# ---------------------------------------------------------------------------- CSV
CSV_COLUMNS = ("case_id", "analysis_id", "started_at", "finished_at", "evidence_id", "evidence_sha256",
               "evidence_name", "model", "backbone", "backbone_weights", "weights_sha256", "random_weights",
               "app_version", "top_k", "tencrop", "region", "rank", "lat", "lon", "probability", "place",
               "country_code", "distance_to_top_km", "actor", "caveats")


def to_csv(store: CaseStore, case_id: str) -> str:
    """One row per candidate of every analysis (``rank`` 1 is the top candidate)."""
    case = store.get_case(case_id)
    names = {e.id: e.original_name for e in case.evidence}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in case.analyses:
        base = [case.id, a.id, a.started_at.isoformat(), a.finished_at.isoformat(), a.evidence_id, a.evidence_sha256,
                names.get(a.evidence_id, ""), a.model, a.backbone, a.backbone_weights, a.weights_sha256 or "",
                a.random_weights, a.app_version, a.parameters.get("top_k"), a.parameters.get("tencrop"),
                a.parameters.get("region") or ""]
        for c in a.candidates or []:
            row = base + [c["rank"], c["lat"], c["lon"], c["probability"], c.get("place", ""),
                          c.get("country_code", ""), c.get("distance_to_top_km"), a.created_by,
                          " | ".join(analysis_caveats(a))]
            writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()
