"""Writing predictions as JSON, CSV and GeoJSON (torch-free)."""

from __future__ import annotations

import csv
import io
import json

from geoapp.prediction import Prediction
from geoapp.textsafe import csv_cell, unicode_text

CSV_FIELDS = (
    "source", "ok", "error", "rank", "lat", "lon", "probability", "place", "country_code",
    "distance_to_top_km", "merged_points", "mass_25km", "mass_200km", "mass_750km",
    "exif_gps_lat", "exif_gps_lon", "region", "tencrop", "model", "backbone_weights", "random_weights",
    "warnings",  # the model family's caveat and the random-weights flag travel with every row
)


def to_json(predictions: list[Prediction], include_surface: bool = False) -> str:
    return unicode_text(json.dumps([p.to_dict(include_surface=include_surface) for p in predictions], indent=2,
                                   ensure_ascii=False))


def _exif_gps(prediction: Prediction) -> tuple[float | None, float | None]:
    exif = prediction.image.get("exif") or {}
    return exif.get("gps_lat"), exif.get("gps_lon")


def to_csv(predictions: list[Prediction]) -> str:
    """One row per candidate; an image that failed gets one row with its error. Text cells are
    guarded against spreadsheet formula injection (file names and places come from outside)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for p in predictions:
        gps_lat, gps_lon = _exif_gps(p)
        common = {
            "source": p.source, "ok": p.ok, "error": p.error or "",
            "mass_25km": p.mass_within_km.get(25, ""), "mass_200km": p.mass_within_km.get(200, ""),
            "mass_750km": p.mass_within_km.get(750, ""),
            "exif_gps_lat": "" if gps_lat is None else gps_lat, "exif_gps_lon": "" if gps_lon is None else gps_lon,
            "region": p.parameters.get("region") or "", "tencrop": p.parameters.get("tencrop", ""),
            "model": p.model.get("model", ""), "backbone_weights": p.model.get("backbone_weights", ""),
            "random_weights": p.random_weights, "warnings": " | ".join(p.warnings),
        }
        rows = [common] if not p.candidates else [{
            **common, "rank": c.rank, "lat": round(c.lat, 6), "lon": round(c.lon, 6),
            "probability": f"{c.probability:.6g}", "place": c.place_label, "country_code": c.country_code,
            "distance_to_top_km": round(c.distance_to_top_km, 3), "merged_points": c.merged_points,
        } for c in p.candidates]
        for row in rows:
            writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return buffer.getvalue()


def to_geojson(predictions: list[Prediction]) -> str:
    """A FeatureCollection: candidate points (and EXIF GPS points) with their properties."""
    features = []
    for p in predictions:
        for c in p.candidates:
            features.append({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(c.lon, 6), round(c.lat, 6)]},
                "properties": {
                    "kind": "candidate", "source": p.source, "rank": c.rank, "probability": c.probability,
                    "place": c.place_label, "country_code": c.country_code,
                    "distance_to_top_km": round(c.distance_to_top_km, 3), "random_weights": p.random_weights,
                },
            })
        gps_lat, gps_lon = _exif_gps(p)
        if gps_lat is not None and gps_lon is not None:
            features.append({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [gps_lon, gps_lat]},
                "properties": {"kind": "exif_gps", "source": p.source},
            })
    errors = [{"source": p.source, "error": p.error} for p in predictions if not p.ok]
    return unicode_text(json.dumps({"type": "FeatureCollection", "features": features, "errors": errors}, indent=2,
                                   ensure_ascii=False))


WRITERS = {"json": to_json, "csv": to_csv, "geojson": to_geojson}
