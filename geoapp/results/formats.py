"""Writing predictions as JSON, CSV and GeoJSON, and as flat records for Parquet/JSONL (torch-free).

:func:`to_records` gives one flat record per input (prediction or error) with the columns in
:data:`RECORD_COLUMNS`; both batch engines (local and Ray) write exactly these records, so their
outputs can be compared column by column (``timings_json`` aside)."""

from __future__ import annotations

import csv
import io
import json

from geoapp.results.prediction import Prediction
from geoapp.results.textsafe import csv_cell, unicode_text

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

#: Formats written as a folder of record parts (geoapp.runtime.output) rather than one text.
RECORD_FORMATS = ("parquet", "jsonl")

#: The flat record of one input: (column, Arrow type name). Nested data travel as JSON text.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("input", "string"),  # the input as given (path, URL): the key a rerun skips on
    ("ok", "bool"),
    ("error", "string"),
    ("lat", "float64"),  # the top candidate (null when failed)
    ("lon", "float64"),
    ("probability", "float64"),
    ("place", "string"),
    ("country_code", "string"),
    ("mass_25km", "float64"),
    ("mass_200km", "float64"),
    ("mass_750km", "float64"),
    ("top_k_json", "string"),  # every candidate: rank, lat, lon, probability, place ...
    ("family", "string"),
    ("weights", "string"),
    ("random_weights", "bool"),
    ("device", "string"),
    ("warnings_json", "string"),
    ("image_sha256", "string"),
    ("exif_gps_lat", "float64"),
    ("exif_gps_lon", "float64"),
    ("model_json", "string"),  # the family identity (FamilyIdentity.to_dict)
    ("parameters_json", "string"),
    ("image_json", "string"),  # file facts: sha256, format, sizes, EXIF, notes
    ("evidence_json", "string"),  # family-specific evidence (segmentation, scenes ...)
    ("timings_json", "string"),  # differs run to run
)
RECORD_COLUMN_NAMES = tuple(name for name, _ in RECORD_COLUMNS)


def _json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def to_record(prediction: Prediction) -> dict:
    """One flat, JSON-ready record of a prediction (or its error), with :data:`RECORD_COLUMNS`."""
    data = prediction.to_dict()
    top = prediction.top
    gps_lat, gps_lon = _exif_gps(prediction)
    evidence = {item["key"]: data.get(item["key"]) for item in data.get("evidence", [])}
    return {
        "input": prediction.source,
        "ok": prediction.ok,
        "error": prediction.error,
        "lat": None if top is None else round(top.lat, 6),
        "lon": None if top is None else round(top.lon, 6),
        "probability": None if top is None else float(top.probability),
        "place": None if top is None else top.place_label,
        "country_code": None if top is None else top.country_code,
        "mass_25km": prediction.mass_within_km.get(25),
        "mass_200km": prediction.mass_within_km.get(200),
        "mass_750km": prediction.mass_within_km.get(750),
        "top_k_json": _json_text(data["candidates"]),
        "family": prediction.model.get("family"),
        "weights": prediction.model.get("weights"),
        "random_weights": prediction.random_weights,
        "device": prediction.model.get("device"),
        "warnings_json": _json_text(list(prediction.warnings)),
        "image_sha256": prediction.image.get("sha256"),
        "exif_gps_lat": gps_lat,
        "exif_gps_lon": gps_lon,
        "model_json": _json_text(data["model"]),
        "parameters_json": _json_text(data["parameters"]),
        "image_json": _json_text(data["image"]),
        "evidence_json": _json_text(evidence),
        "timings_json": _json_text(data["timings_ms"]),
    }


def to_records(predictions: list[Prediction]) -> list[dict]:
    """The flat records of many predictions (see :data:`RECORD_COLUMNS`)."""
    return [to_record(p) for p in predictions]


def record_schema():
    """The Arrow schema of the records (pyarrow is imported here, not by the JSON/CSV writers)."""
    import pyarrow as pa

    return pa.schema([(name, pa.type_for_alias(kind)) for name, kind in RECORD_COLUMNS])
