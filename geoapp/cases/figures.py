"""The numbers behind a verdict: how a claim compares with model output and EXIF GPS.

For a claim (circle or country) and an analysis:

* ``distance_km``: claimed point (circle centre) to the top candidate; for a country
  claim, the top candidate to the nearest point of the country (0 inside);
* ``distance_to_area_km``: top candidate to the edge of the claimed area (0 inside);
* ``mass_in_claim``: probability mass of the scored points inside the claimed area.
  Exact when the claim existed at analysis time (computed over every scored point then);
  otherwise estimated from the stored surface summary (its most probable points), and
  flagged ``mass_exact: false`` with the share of mass that summary holds;
* ``claim_rank``: rank of the first candidate inside the claimed area, or None.

And per evidence file with EXIF GPS: distance to the claim and whether it is inside;
with an EXIF capture time and a claimed time: the difference in days.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shapely.geometry import Point
from shapely.ops import nearest_points

from geoapp.geo.distance import haversine_km
from geoapp.geo.regions import Region

from .claims import claim_region, time_difference_days
from .models import Analysis, Claim, Evidence


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def region_mass(region: Region, lat: np.ndarray, lon: np.ndarray, probability: np.ndarray) -> float:
    """Sum of ``probability`` over the points inside ``region``."""
    if len(probability) == 0:
        return 0.0
    inside = np.asarray(region.contains(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)))
    return float(np.asarray(probability, dtype=np.float64)[inside].sum())


def distance_to_claim_km(claim: Claim, region: Region, lat: float, lon: float) -> tuple[float, float]:
    """(distance to the claimed point or country, distance to the claimed area's edge), km."""
    inside = bool(np.asarray(region.contains(np.array([lat]), np.array([lon])))[0])
    if claim.lat is not None and claim.lon is not None:
        centre = float(haversine_km(claim.lat, claim.lon, lat, lon))
        return centre, 0.0 if inside else max(0.0, centre - float(claim.radius_km or 0.0))
    if inside:
        return 0.0, 0.0
    # Nearest point of the polygon in lon/lat degrees, then the great-circle distance:
    # approximate (degrees are not isotropic), good to a few percent at country scale.
    nearest, _ = nearest_points(region.geometry, Point(lon, lat))
    edge = float(haversine_km(lat, lon, nearest.y, nearest.x))
    return edge, edge


def analysis_caveats(analysis: Analysis) -> list[str]:
    """The model family's caveat(s) behind an analysis (e.g. "not made for ground-level photos").

    Stored in the model identity since the family registry; older analyses carry it only among
    their warnings, so those (minus the random-weights flag, reported on its own) count too.
    """
    from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

    caveat = (analysis.model_identity or {}).get("caveat")
    if caveat:
        return [str(caveat)]
    return [str(w) for w in (analysis.warnings or []) if w != RANDOM_WEIGHTS_WARNING]


def analysis_figures(claim: Claim, analysis: Analysis, region: Region | None = None) -> dict[str, Any]:
    """Claim-versus-model figures for one analysis (see module docstring)."""
    region = region or claim_region(claim.region_key)
    candidates = analysis.candidates or []
    out: dict[str, Any] = {"analysis_id": analysis.id, "evidence_id": analysis.evidence_id,
                           "evidence_sha256": analysis.evidence_sha256, "random_weights": analysis.random_weights,
                           "distance_km": None, "distance_to_area_km": None, "top_inside_claim": None,
                           "claim_rank": None, "mass_in_claim": None, "mass_exact": None,
                           "model": analysis.model, "caveats": analysis_caveats(analysis)}
    if candidates:
        lat = np.array([c["lat"] for c in candidates], dtype=np.float64)
        lon = np.array([c["lon"] for c in candidates], dtype=np.float64)
        inside = np.asarray(region.contains(lat, lon))
        hits = np.flatnonzero(inside)
        out["claim_rank"] = int(candidates[hits[0]]["rank"]) if hits.size else None
        out["top_inside_claim"] = bool(inside[0])
        distance, to_area = distance_to_claim_km(claim, region, float(lat[0]), float(lon[0]))
        out["distance_km"], out["distance_to_area_km"] = _r(distance), _r(to_area)
    exact = (analysis.claim_mass or {}).get(claim.region_key)
    if exact is not None:
        out["mass_in_claim"], out["mass_exact"] = float(exact), True
    else:
        surface = analysis.surface or {}
        probs = np.asarray(surface.get("probability", []), dtype=np.float64)
        if probs.size:
            out["mass_in_claim"] = region_mass(region, np.asarray(surface["lat"]), np.asarray(surface["lon"]), probs)
            out["mass_exact"] = False
            out["surface_mass_kept"] = float(probs.sum())
    return out


def exif_figures(claim: Claim, evidence: list[Evidence], region: Region | None = None) -> list[dict[str, Any]]:
    """EXIF GPS and capture time of each evidence file against the claim."""
    region = region or claim_region(claim.region_key)
    rows = []
    for item in evidence:
        exif = item.exif or {}
        row: dict[str, Any] = {"evidence_id": item.id, "evidence_sha256": item.sha256, "name": item.original_name,
                               "gps": None, "distance_km": None, "distance_to_area_km": None, "inside_claim": None,
                               "capture_time": exif.get("capture_time"),
                               "time_difference_days": _r(time_difference_days(claim.claimed_time,
                                                                               exif.get("capture_time")), 4)}
        if item.gps is not None:
            lat, lon = item.gps
            distance, to_area = distance_to_claim_km(claim, region, lat, lon)
            row.update(gps=[lat, lon], distance_km=_r(distance), distance_to_area_km=_r(to_area),
                       inside_claim=to_area == 0.0 and bool(np.asarray(region.contains(np.array([lat]),
                                                                                        np.array([lon])))[0]))
        rows.append(row)
    return rows


def verdict_figures(claim: Claim | None, analyses: list[Analysis], evidence: list[Evidence],
                    chosen: Analysis | None, clues: list | None = None) -> dict[str, Any]:
    """Everything stored with a verdict; ``summary`` holds the four headline numbers, ``areas`` the chosen
    analysis's credible areas times the case's clues as they were when the verdict was set."""
    summary: dict[str, Any] = {"distance_km": None, "mass_in_claim": None, "claim_rank": None,
                               "exif_distance_km": None}
    if claim is None:
        return {"claim": None, "analysis_id": chosen.id if chosen else None, "summary": summary,
                "analyses": [], "exif": [], "notes": ["no claim recorded: nothing to compare with"]}
    region = claim_region(claim.region_key)
    per_analysis = [analysis_figures(claim, a, region) for a in analyses]
    exif = exif_figures(claim, evidence, region)
    notes = []
    if chosen is not None:
        main = next(f for f in per_analysis if f["analysis_id"] == chosen.id)
        summary.update(distance_km=main["distance_km"], mass_in_claim=main["mass_in_claim"],
                       claim_rank=main["claim_rank"])
        if main["mass_exact"] is False:
            notes.append("mass in the claimed area estimated from the stored surface summary "
                         f"(which holds {main.get('surface_mass_kept', 0):.1%} of the probability)")
        if chosen.random_weights:
            notes.append("the chosen analysis used RANDOM model weights: its figures are meaningless")
        notes += [f"caveat ({chosen.model}): {caveat}" for caveat in main["caveats"]]
    else:
        notes.append("no analysis: model figures are empty")
    with_gps = [row for row in exif if row["gps"] is not None]
    preferred = [row for row in with_gps if chosen is not None and row["evidence_id"] == chosen.evidence_id]
    if preferred or with_gps:
        summary["exif_distance_km"] = (preferred or with_gps)[0]["distance_km"]
    return {"claim": {"id": claim.id, "label": claim.label, "region_key": claim.region_key},
            "analysis_id": chosen.id if chosen else None, "summary": summary, "analyses": per_analysis,
            "exif": exif, "notes": notes, "areas": _areas_figures(claim, chosen, clues or [])}


def _areas_figures(claim: Claim, chosen: Analysis | None, clues: list) -> dict[str, Any] | None:
    """The chosen analysis x the clues: levels, km², calibrated or not, and where the claimed point lies."""
    from .clues import analysis_areas

    if chosen is None:
        return None
    point = (claim.lat, claim.lon) if claim.lat is not None and claim.lon is not None else None
    areas = analysis_areas(chosen, list(clues), point)
    if areas is None:
        return None
    return {"clues": list(areas.clues), "levels": [a.to_dict() for a in areas.areas], "claim": areas.claim,
            "conflicts": list(areas.conflicts), "statement": areas.statement()}


def surface_bounds_ok(lat: list[float], lon: list[float]) -> bool:
    """Sanity check used on imported surfaces: finite coordinates in range."""
    la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    return bool(np.all(np.isfinite(la)) and np.all(np.isfinite(lo)) and np.all(np.abs(la) <= 90)
                and np.all(np.abs(lo) <= 180))


__all__ = ["analysis_caveats", "analysis_figures", "exif_figures", "region_mass", "verdict_figures", "distance_to_claim_km",
           "surface_bounds_ok"]
