"""Results -> what the analyst reads: tables, the EXIF panel, summaries and warning banners.

Plain data in, plain data out (lists of rows, Markdown/HTML strings); no Gradio, so every
view is unit-tested. All user-controlled text is escaped before it becomes HTML/Markdown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from geoapp.geo.distance import haversine_km
from geoapp.ui.maps.render import ReferencePoint
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING, Prediction, percent
from geoapp.results.textsafe import display_text

CANDIDATE_COLUMNS = ["Rank", "Probability", "Latitude", "Longitude", "Place", "Country", "km from #1"]
PLACE_COLUMNS = ["Rank", "Probability", "Latitude", "Longitude", "Place", "Country"]
PLACE_COLUMN_WIDTHS = ["7%", "15%", "14%", "15%", "31%", "18%"]


def candidate_column_widths(references: Sequence[ReferencePoint] = ()) -> list[str]:
    """Widths that always add up to 100 %, so no column (distances last) falls off the right edge."""
    fixed = [6, 13, 11, 12, 0, 12, 9] + [11] * len(references)
    fixed[4] = max(18, 100 - sum(fixed))
    return [f"{width}%" for width in fixed]

_ORIENTATIONS = {
    1: "1 (normal)", 2: "2 (mirrored)", 3: "3 (rotated 180°)", 4: "4 (mirrored, rotated 180°)",
    5: "5 (mirrored, rotated 90°)", 6: "6 (rotated 90° clockwise)", 7: "7 (mirrored, rotated 270°)",
    8: "8 (rotated 90° counter-clockwise)",
}


def escape(value: object) -> str:
    """Text for Markdown/HTML output: HTML-escaped, Markdown emphasis/table characters neutralised."""
    text = html.escape(display_text(value), quote=True)  # direction overrides shown, not obeyed
    for char, entity in (("|", "&#124;"), ("*", "&#42;"), ("_", "&#95;"), ("`", "&#96;"), ("[", "&#91;"),
                         ("]", "&#93;"), ("$", "&#36;"), ("@", "&#64;"), (":", "&#58;")):
        text = text.replace(char, entity)
    return text


def _km(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def candidate_columns(references: Sequence[ReferencePoint]) -> list[str]:
    return CANDIDATE_COLUMNS + [f"km from {ref.label}" for ref in references]


def candidate_rows(prediction: Prediction, references: Sequence[ReferencePoint] = ()) -> list[list]:
    """One row per candidate: rank, probability, position, place, country, distances."""
    rows = []
    for candidate in prediction.candidates:
        place = candidate.place
        country = getattr(place, "country", "") or candidate.country_code if place is not None else ""
        row = [
            candidate.rank,
            percent(candidate.probability),
            round(candidate.lat, 4),  # ~10 m: enough to read; the JSON keeps full precision
            round(candidate.lon, 4),
            candidate.place_label or "—",
            country or "—",
            _km(candidate.distance_to_top_km),
        ]
        for ref in references:
            row.append(_km(float(haversine_km(ref.lat, ref.lon, candidate.lat, candidate.lon))))
        rows.append(row)
    return rows


def place_rows(prediction: Prediction) -> list[list]:
    """Text -> map: the top places (no distances)."""
    return [row[:len(PLACE_COLUMNS)] for row in candidate_rows(prediction)]


def confidence_markdown(prediction: Prediction, references: Sequence[ReferencePoint] = ()) -> str:
    """How sure the model is, in one glance: the top place, its probability, the mass nearby."""
    if not prediction.ok:
        error = prediction.error or ""
        if error.startswith(f"{prediction.source}:"):  # the message already names the file
            return f"**Could not analyse** {escape(error)}"
        return f"**Could not analyse {escape(prediction.source)}:** {escape(error)}"
    top = prediction.top
    if top is None:
        return "No candidate."
    mass = prediction.mass_within_km
    parts = [f"**Most likely:** #1 {escape(top.place_label or f'{top.lat:.4f}, {top.lon:.4f}')} — "
             f"**{percent(top.probability)}**"]
    fewer = fewer_places_note(prediction)
    if fewer:
        parts.append(fewer)
    if mass:
        spread = " · ".join(f"{percent(mass[r])} within {r} km" for r in sorted(mass))
        parts.append(f"Probability near #1: {spread}. Low values mean the model spreads its belief widely.")
    for ref in references:
        distances = [float(haversine_km(ref.lat, ref.lon, c.lat, c.lon)) for c in prediction.candidates]
        nearest = min(range(len(distances)), key=distances.__getitem__)
        parts.append(f"**{escape(ref.label)}** ({ref.lat:.5f}, {ref.lon:.5f}) is {_km(distances[0])} km from #1; "
                     f"nearest candidate #{nearest + 1} at {_km(distances[nearest])} km.")
    region = prediction.region
    if region is not None:
        parts.append(f"Search restricted to **{escape(getattr(region, 'label', region))}**.")
    return "\n\n".join(parts)


def fewer_places_note(prediction: Prediction) -> str | None:
    """Why fewer places are shown than were asked for (None when the count is as asked): nearby candidates are
    one place, or the search area holds fewer candidate points."""
    asked = (prediction.parameters or {}).get("top_k")
    shown = len(prediction.candidates)
    if not isinstance(asked, int) or shown >= asked:
        return None
    points = (prediction.parameters or {}).get("candidate_points")
    if isinstance(points, int) and points < asked:
        return f"{shown} distinct places ({asked} asked): the search area holds only {points} candidate points."
    merge_km = (prediction.parameters or {}).get("merge_km")
    within = f" (closer than {merge_km:g} km)" if isinstance(merge_km, (int, float)) and merge_km > 0 else ""
    return f"{shown} distinct places ({asked} asked): close candidates{within} were merged into one place."


def no_gradcam_markdown(label: str) -> str:
    """The Grad-CAM panel for a model that has none: a plain note, not an error."""
    return f"_{escape(label)} does not offer Grad-CAM: there is no heatmap for its results._"


def exif_markdown(image: dict) -> str:
    """The EXIF panel: GPS, capture time, camera, orientation, plus file facts and notes."""
    if not image:
        return "_No file information._"
    exif = image.get("exif") or {}
    size = image.get("original_size") or []
    facts = [f"**{escape(image.get('name') or 'photo')}**"]
    if image.get("format"):
        facts.append(escape(image["format"]))
    if len(size) == 2:
        facts.append(f"{size[0]}×{size[1]} px")
    if image.get("file_size"):
        facts.append(f"{image['file_size'] / 1e6:.2f} MB")
    lines = [" · ".join(facts), ""]
    if image.get("sha256"):
        lines += [f"SHA-256 `{image['sha256']}`", ""]
    gps = "—"
    if exif.get("gps_lat") is not None and exif.get("gps_lon") is not None:
        gps = f"{exif['gps_lat']:.6f}, {exif['gps_lon']:.6f}"
        if exif.get("gps_altitude_m") is not None:
            gps += f" (altitude {exif['gps_altitude_m']:.0f} m)"
        gps += " — marker **E** on the map"
    camera = " ".join(str(exif[k]) for k in ("camera_make", "camera_model") if exif.get(k))
    orientation = exif.get("orientation")
    rows = [
        ("GPS position", gps if gps != "—" else "none in the file (often stripped by social networks)"),
        ("Capture time", escape(exif.get("capture_time") or "—")),
        ("Camera", escape(camera or "—")),
        ("Lens", escape(exif.get("lens") or "—")),
        ("Software", escape(exif.get("software") or "—")),
        ("Orientation", _ORIENTATIONS.get(orientation, escape(orientation)) + " — applied" if orientation else "—"),
    ]
    lines += ["| EXIF | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    notes = list(image.get("notes") or []) + list(image.get("warnings") or [])
    if notes:
        lines += ["", "Notes: " + "; ".join(escape(n) for n in notes)]
    lines += ["", "_EXIF can be edited or stripped: treat it as a claim to check, not as proof._"]
    return "\n".join(lines)


def banner_html(predictions: Sequence[Prediction], *, random_weights: bool) -> str:
    """Warnings above the results; the random-weights one is impossible to miss."""
    blocks = []
    if random_weights or any(p.random_weights for p in predictions):
        blocks.append('<div class="geoapp-random" role="alert"><b>RANDOM WEIGHTS — NOT A REAL RESULT.</b> '
                      f"{html.escape(RANDOM_WEIGHTS_WARNING.split(':', 1)[1].strip())}</div>")
    failed = [p for p in predictions if not p.ok]
    if failed:
        items = "".join(f"<li>{html.escape(p.error or '')}</li>" for p in failed)
        blocks.append(f'<div class="geoapp-error"><b>{len(failed)} file(s) could not be analysed:</b><ul>{items}</ul></div>')
    others = sorted({w for p in predictions for w in p.warnings if w != RANDOM_WEIGHTS_WARNING}
                    | {w for p in predictions for w in (p.image or {}).get("warnings", [])})
    if others:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in others)
        blocks.append(f'<div class="geoapp-warning"><ul>{items}</ul></div>')
    return "".join(blocks)


def result_choices(names: Sequence[str], predictions: Sequence[Prediction]) -> list[tuple[str, int]]:
    """Labels for the photo selector: '1. name — Paris, France (23 %)' -> index."""
    choices = []
    for index, (name, prediction) in enumerate(zip(names, predictions)):
        if prediction.ok and prediction.top is not None:
            label = f"{index + 1}. {name} — {prediction.top.place_label or 'candidate #1'} ({percent(prediction.top.probability)})"
        else:
            label = f"{index + 1}. {name} — could not be analysed"
        choices.append((label, index))
    return choices
