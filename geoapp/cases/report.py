"""Self-contained HTML case report: one file, no network, printable to PDF.

Images are embedded as ``data:`` URIs (evidence as downscaled JPEG previews, with the
original file's SHA-256 alongside), maps are inline SVG (:mod:`geoapp.cases.svgmap`),
styles are inline, and there is no script at all.  A Content-Security-Policy meta tag
forbids every external load, so even a mistake cannot make the report phone home.
Every piece of user or file text goes through :func:`e`: characters XML forbids replaced,
Unicode direction overrides shown as ``[U+202E]`` (a name reads as it is stored), then escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from typing import Any

from geoapp.results.textsafe import display_text

from .dump import case_document, fingerprint
from .errors import EvidenceIntegrityError
from .models import Analysis, Case, Evidence
from .service import CaseStore, IntegrityProblem
from .svgmap import (
    MAP_CSS,
    SERIES_SHAPES,
    WORLD,
    MapPoint,
    frame_around,
    render_map,
    series_letter,
)

PREVIEW_SIDE = 1024
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; margin: 2rem auto;
       max-width: 1000px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { border-bottom: 2px solid #cbd5e1; padding-bottom: .2rem; margin-top: 2rem; }
h3 { margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #cbd5e1; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f1f5f9; white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.muted { color: #475569; } .pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.warn { background: #fef3c7; border: 1px solid #f59e0b; padding: .5rem .75rem; margin: .5rem 0; }
.bad { background: #fee2e2; border: 1px solid #dc2626; padding: .5rem .75rem; margin: .5rem 0; }
.ok { background: #dcfce7; border: 1px solid #16a34a; padding: .5rem .75rem; margin: .5rem 0; }
.verdict { font-size: 1.3rem; font-weight: bold; text-transform: uppercase; }
.verdict.supported { color: #15803d; } .verdict.contradicted { color: #b91c1c; } .verdict.inconclusive { color: #a16207; }
figure { margin: .5rem 0 1rem; } figure img { max-width: 100%; max-height: 520px; border: 1px solid #94a3b8; }
.pair { display: flex; gap: 1rem; flex-wrap: wrap; } .pair figure { flex: 1 1 300px; }
.strip { display: flex; gap: .5rem; flex-wrap: wrap; } .strip figure { width: 200px; margin: 0; }
.strip img { width: 100%; } .strip figcaption { font-size: 12px; }
.legend span { margin-right: 1.2rem; }
section, figure, table, .evidence, .analysis { break-inside: avoid-page; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2 { break-after: avoid-page; }
  .analysis, .evidence { break-inside: avoid-page; }
  a { color: inherit; text-decoration: none; }
}
@page { size: A4; margin: 15mm; }
""" + MAP_CSS


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(display_text(value), quote=True)


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any, digits: int = 1, unit: str = "") -> str:
    return "—" if value is None else f"{float(value):,.{digits}f}{unit}"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2%}"


def _rows(pairs: list[tuple[str, str]]) -> str:
    """A two-column table; values are already HTML."""
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _preview(data: bytes, side: int = PREVIEW_SIDE) -> str | None:
    """A downscaled JPEG data URI of an image (orientation applied), or None if it cannot be decoded."""
    from geoapp.imaging import ImageLoadError, load_image

    try:
        image = load_image(data).image.copy()
    except ImageLoadError:
        return None
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------- sections
def _integrity(problems: list[IntegrityProblem], case: Case) -> str:
    if not problems:
        return (f'<div class="ok">All {len(case.evidence)} evidence file(s) and stored Grad-CAM images were re-hashed '
                "for this report and match their recorded SHA-256.</div>")
    items = "".join(f"<li>{e(p.message)}</li>" for p in problems)
    return f'<div class="bad"><strong>Integrity problems found while generating this report:</strong><ul>{items}</ul></div>'


def _verdict_section(case: Case) -> str:
    if not case.verdicts:
        return "<p class=\"muted\">No verdict yet.</p>"
    out = []
    for position, v in enumerate(reversed(case.verdicts)):
        figures = v.figures or {}
        title = "Current verdict" if position == 0 else "Earlier verdict"
        out.append(f"<h3>{title}: <span class=\"verdict {e(v.verdict)}\">{e(v.verdict)}</span></h3>")
        out.append(f'<p class="muted">by {e(v.created_by)}, {e(_when(v.created_at))}</p>')
        out.append(f'<p class="pre">{e(v.rationale)}</p>')
        claim = figures.get("claim") or {}
        out.append(_rows([
            ("Claim compared", e(claim.get("label", "—"))),
            ("Distance claim → top candidate", e(_num(v.distance_km, 1, " km"))),
            ("Probability mass inside the claimed area", e(_pct(v.mass_in_claim))),
            ("Rank of the first candidate inside the claimed area", e(v.claim_rank if v.claim_rank else "none")),
            ("EXIF GPS → claim distance", e(_num(v.exif_distance_km, 1, " km"))),
        ]))
        areas = figures.get("areas")
        if areas:  # frozen when the verdict was set: the clues and areas the analyst decided on
            clues = ", ".join(areas.get("clues") or []) or "none"
            items = "".join(f"<li>{e(level['summary'])}</li>" for level in areas.get("levels") or [])
            where = f"<p>The claimed place lies {e(areas['claim'])}.</p>" if areas.get("claim") else ""
            out.append(f"<p><b>Credible areas when decided</b> (the analysis × clues: {e(clues)}):</p>"
                       f"<ul>{items}</ul>{where}")
        for note in figures.get("notes", []):
            out.append(f'<div class="warn">{e(note)}</div>')
        if position == 0 and figures.get("analyses"):
            head = "<tr><th>Analysis</th><th>Evidence</th><th>Distance</th><th>Mass in claim</th><th>Claim rank</th></tr>"
            body = "".join(
                f"<tr><td><code>{e(a['analysis_id'][:12])}</code></td><td class=\"hash\">{e(a['evidence_sha256'][:16])}…</td>"
                f"<td class=\"num\">{e(_num(a['distance_km'], 1, ' km'))}</td>"
                f"<td class=\"num\">{e(_pct(a['mass_in_claim']))}{'' if a['mass_exact'] in (True, None) else ' (est.)'}</td>"
                f"<td class=\"num\">{e(a['claim_rank'] or '—')}</td></tr>" for a in figures["analyses"])
            out.append(f"<table>{head}{body}</table>")
    return "".join(out)


def _claims_section(case: Case) -> str:
    if not case.claims:
        return '<p class="muted">No claim recorded.</p>'
    head = "<tr><th>Claimed place</th><th>As typed</th><th>Area</th><th>Claimed time</th><th>Source</th><th>Added</th></tr>"
    rows = []
    for c in case.claims:
        area = (f"{_num(c.radius_km, 1)} km around {c.lat:.5f}, {c.lon:.5f}" if c.lat is not None
                else f"country {c.country_code or ''}")
        rows.append(f"<tr><td>{e(c.label)}</td><td>{e(c.place_text)}</td><td>{e(area)}</td>"
                    f"<td>{e(c.claimed_time or '—')}</td><td class=\"pre\">{e(c.source or '—')}</td>"
                    f"<td>{e(c.created_by)}<br><span class=\"muted\">{e(_when(c.created_at))}</span></td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _maps(case: Case) -> str:
    from .claims import claim_region

    points: list[MapPoint] = []
    areas = []
    for c in case.claims:
        areas.append(claim_region(c.region_key).geometry)
        if c.lat is not None:
            points.append(MapPoint(c.lat, c.lon, "claim", f"Claim: {c.label}"))
    for item in case.evidence:
        if item.gps:
            points.append(MapPoint(item.gps[0], item.gps[1], "exif_gps", f"EXIF GPS of {item.original_name}"))
    names = {x.id: x.original_name for x in case.evidence}
    for series, a in enumerate(case.analyses):
        letter = series_letter(series) if len(case.analyses) > 1 else ""
        for cand in a.candidates or []:
            points.append(MapPoint(cand["lat"], cand["lon"], "candidate",
                                   f"{letter}#{cand['rank']} {cand.get('place', '')} {cand['probability']:.1%} "
                                   f"({names.get(a.evidence_id, '')}, {a.model})", cand["probability"], cand["rank"],
                                   series))
    heat = case.analyses[-1].surface if case.analyses else None
    out = [render_map(WORLD, points, areas, heat, "World map: claim, EXIF GPS and candidates")]
    if case.claims:
        claim = case.claims[-1]
        south, west, north, east = claim_region(claim.region_key).bounds
        if west <= east:  # a claim crossing the antimeridian gets only the world map
            corners = [(south, west), (north, east)] + [(p.lat, p.lon) for p in points if p.kind == "exif_gps"]
            bounds = frame_around(corners, pad=0.35)
            if (bounds[2] - bounds[0]) < 120:
                out.append(render_map(bounds, points, areas, heat, f"Around the claim: {claim.label}"))
    legend = ('<p class="legend muted"><span style="color:#d97706">✚ / shaded: claim</span>'
              '<span style="color:#2563eb">▲ EXIF GPS</span><span style="color:#dc2626">● model candidates '
              '(size ~ probability, numbers = rank)</span><span style="color:#7c3aed">· probability surface of the '
              'latest analysis</span></p>')
    if len(case.analyses) > 1:
        shapes = {"circle": "●", "square": "■", "diamond": "◆", "triangle": "▼"}
        keys = "".join(
            f"<span>{shapes[SERIES_SHAPES[i % len(SERIES_SHAPES)]]} {series_letter(i)}1, {series_letter(i)}2 …: "
            f"{e(names.get(a.evidence_id, '?'))}, {e(a.model)} ({e(a.id[:8])})</span>"
            for i, a in enumerate(case.analyses))
        legend += f'<p class="legend muted">Candidates by analysis: {keys}</p>'
    return "".join(f"<figure>{m}</figure>" for m in out) + legend


def _exif_rows(item: Evidence) -> list[tuple[str, str]]:
    exif = item.exif or {}
    gps = f"{exif['gps_lat']:.6f}, {exif['gps_lon']:.6f}" if item.gps else "none"
    camera = " ".join(str(exif.get(k) or "") for k in ("camera_make", "camera_model")).strip()
    return [("EXIF GPS", e(gps)), ("EXIF capture time", e(exif.get("capture_time") or "none")),
            ("Camera", e(camera or "unknown")), ("Software", e(exif.get("software") or "—"))]


def _evidence_section(store: CaseStore, case: Case, problems: dict[str, IntegrityProblem]) -> str:
    if not case.evidence:
        return '<p class="muted">No evidence added.</p>'
    out = []
    for item in case.evidence:
        if item.kind == "video":
            out.append(_video_block(store, case, item, problems))
            continue
        out.append(f'<div class="evidence"><h3>{e(item.original_name)}</h3>')
        if item.kind == "frame":  # shown in its video's frame strip: the rows identify it
            out.append(_rows([("SHA-256", f'<span class="hash">{e(item.sha256)}</span>'),
                              ("Keyframe of", e(_parent_name(case, item))), ("Time", e(f"{item.time_s:.2f} s")),
                              ("Size", e(f"{item.file_size:,} bytes, {item.width}×{item.height} px"))]))
            out.append("</div>")
            continue
        problem = problems.get(item.sha256)
        uri = None
        if problem is None:
            try:
                uri = _preview(store.evidence_bytes(item))
            except EvidenceIntegrityError as error:
                out.append(f'<div class="bad">{e(error)}</div>')
        else:
            out.append(f'<div class="bad">{e(problem.message)} — not shown.</div>')
        if uri:
            out.append(f'<figure><img src="{uri}" alt="{e(item.original_name)}">'
                       '<figcaption class="muted">Preview (downscaled); the original file is identified by the '
                       "SHA-256 below.</figcaption></figure>")
        out.append(_rows([("SHA-256", f'<span class="hash">{e(item.sha256)}</span>'),
                          ("Original file name", e(item.original_name)), ("Format", e(item.format or "?")),
                          ("Size", e(f"{item.file_size:,} bytes, {item.width}×{item.height} px")),
                          ("Added", e(f"{_when(item.added_at)} by {item.added_by}")), *_exif_rows(item)]))
        out.append("</div>")
    return "".join(out)


STRIP_SIDE = 200


def _parent_name(case: Case, frame: Evidence) -> str:
    return next((v.original_name for v in case.evidence if v.id == frame.parent_id), "?")


def _video_block(store: CaseStore, case: Case, video: Evidence, problems: dict[str, IntegrityProblem]) -> str:
    """A video: its container facts, then the strip of its keyframes (time, shot, the latest analysis's top place)."""
    media = video.media or {}
    frames = sorted((f for f in case.evidence if f.kind == "frame" and f.parent_id == video.id), key=lambda f: f.time_s)
    latest = {a.evidence_id: a for a in case.analyses}  # analyses are oldest first: the last one wins
    duration = media.get("duration_s")
    out = [f'<div class="evidence"><h3>{e(video.original_name)} (video)</h3>']
    if video.sha256 in problems:
        out.append(f'<div class="bad">{e(problems[video.sha256].message)}</div>')
    out.append(_rows([("SHA-256", f'<span class="hash">{e(video.sha256)}</span>'),
                      ("Container / codec", e(f"{video.format or '?'} / {media.get('codec') or '?'}")),
                      ("Duration", e(f"{float(duration):.1f} s" if duration is not None else "unknown")),
                      ("Creation time (container)", e(media.get("creation_time") or "—")),
                      ("Size", e(f"{video.file_size:,} bytes, {video.width}×{video.height} px")),
                      ("Keyframes kept", e(f"{len(frames)} from {media.get('shots', '?')} shot(s)")),
                      ("Added", e(f"{_when(video.added_at)} by {video.added_by}"))]))
    figures = []
    for frame in frames:
        uri = None
        if frame.sha256 not in problems:
            try:
                uri = _preview(store.evidence_bytes(frame), STRIP_SIDE)
            except EvidenceIntegrityError:
                uri = None
        analysis = latest.get(frame.id)
        top = (analysis.candidates or [{}])[0] if analysis is not None else {}
        place = (f" → {top.get('place') or 'no place name'} ({top['probability']:.0%})"
                 + (" — RANDOM WEIGHTS" if analysis.random_weights else "")) if "probability" in top else ""
        image = f'<img src="{uri}" alt="{e(frame.original_name)}">' if uri else '<div class="bad">not readable</div>'
        figures.append(f'<figure>{image}<figcaption>t = {frame.time_s:.2f} s · shot '
                       f'{e((frame.media or {}).get("shot", "?"))}{e(place)}</figcaption></figure>')
    if figures:
        out.append(f'<div class="strip">{"".join(figures)}</div>')
    out.append("</div>")
    return "".join(out)


def _analysis_block(store: CaseStore, a: Analysis, names: dict[str, str], problems: dict[str, IntegrityProblem]) -> str:
    identity = a.model_identity or {}
    out = [f'<div class="analysis"><h3>{e(a.model)} on {e(names.get(a.evidence_id, "?"))} '
           f'<span class="muted">({e(_when(a.finished_at))})</span></h3>']
    if a.random_weights:
        out.append('<div class="bad"><strong>RANDOM WEIGHTS:</strong> this analysis used a model with random '
                   "(untrained) weights. Its candidates say nothing about where the photo was taken.</div>")
    for warning in a.warnings or []:
        if not a.random_weights or "RANDOM" not in str(warning):
            out.append(f'<div class="warn">{e(warning)}</div>')
    params = a.parameters or {}
    out.append(_rows([
        ("Evidence SHA-256", f'<span class="hash">{e(a.evidence_sha256)}</span>'),
        ("Model / backbone", e(f"{a.model} / {a.backbone}")),
        ("Backbone weights", e(a.backbone_weights)),
        ("Weights checksum (heads SHA-256)", f'<span class="hash">{e(a.weights_sha256 or "—")}</span>'),
        ("Gallery", e(f"{identity.get('gallery', '?')} ({identity.get('gallery_points', '?')} points, "
                      f"sha256 {str(identity.get('gallery_sha256', ''))[:16]}…)")),
        ("Device", e(identity.get("device", "?"))), ("geoapp version", e(a.app_version)),
        ("Parameters", e(f"top-k {params.get('top_k')}, TenCrop {'on' if params.get('tencrop') else 'off'}, "
                         f"region {params.get('region') or 'worldwide'}, merge {params.get('merge_km')} km")),
        ("Run", e(f"{_when(a.started_at)} → {_when(a.finished_at)} by {a.created_by}")),
    ]))
    head = "<tr><th>Rank</th><th>Place</th><th>Lat</th><th>Lon</th><th>Probability</th><th>km from #1</th></tr>"
    rows = "".join(_candidate_row(c) for c in a.candidates or [])
    out.append(f"<table>{head}{rows}</table>")
    mass = a.mass_within_km or {}
    if mass:
        out.append('<p class="muted">Probability mass near the top candidate: '
                   + ", ".join(f"{e(k)} km: {e(_pct(v))}" for k, v in mass.items()) + "</p>")
    if a.gradcam_sha256:
        problem = problems.get(a.gradcam_sha256)
        if problem:
            out.append(f'<div class="bad">{e(problem.message)} — not shown.</div>')
        else:
            try:
                data = store.blobs.read(a.gradcam_sha256, what="Grad-CAM image")
                out.append(f'<figure><img src="{_png_uri(data)}" alt="Grad-CAM"><figcaption class="muted">Grad-CAM '
                           f'(sha256 <span class="hash">{e(a.gradcam_sha256)}</span>)</figcaption></figure>')
            except EvidenceIntegrityError as error:
                out.append(f'<div class="bad">{e(error)}</div>')
    out.append("</div>")
    return "".join(out)


def _candidate_row(c: dict[str, Any]) -> str:
    cells = [e(c["rank"]), e(c.get("place") or "—"), e(f"{c['lat']:.5f}"), e(f"{c['lon']:.5f}"),
             e(_pct(c["probability"])), e(_num(c.get("distance_to_top_km"), 1))]
    return "<tr>" + "".join(f'<td class="num">{v}</td>' if i != 1 else f"<td>{v}</td>"
                            for i, v in enumerate(cells)) + "</tr>"


def _notes_section(case: Case) -> str:
    if not case.notes:
        return '<p class="muted">No notes.</p>'
    return "".join(f'<div class="note"><p class="muted">{e(n.created_by)}, {e(_when(n.created_at))}</p>'
                   f'<p class="pre">{e(n.text)}</p></div>' for n in case.notes)


def _audit_section(events: list) -> str:
    head = "<tr><th>When (UTC)</th><th>Who</th><th>What</th><th>Details</th></tr>"
    rows = "".join(f"<tr><td>{e(_when(ev.at))}{' (imported)' if ev.imported else ''}</td><td>{e(ev.actor)}</td>"
                   f"<td>{e(ev.action)}</td><td class=\"hash\">{e(json.dumps(ev.details, ensure_ascii=False))}</td></tr>"
                   for ev in events)
    return f"<table>{head}{rows}</table>"


def render_html(store: CaseStore, case_id: str) -> str:
    """The full report as one HTML string (UTF-8, no external references)."""
    from geoapp.cases.clues import report_section as clues_report_section
    from geoapp.version import __version__

    case = store.get_case(case_id)
    events = store.events(case_id)
    problems = store.check_integrity(case)
    by_sha = {p.sha256: p for p in problems}
    names = {x.id: x.original_name for x in case.evidence}
    digest = fingerprint(case_document(case, events))
    generated = _when(dt.datetime.now(dt.timezone.utc))
    random_used = any(a.random_weights for a in case.analyses)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Case report: {e(case.title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{e(case.title)}</h1>",
        _rows([("Case id", f"<code>{e(case.id)}</code>"), ("Status", e(case.status)),
               ("Created", e(f"{_when(case.created_at)} by {case.created_by}")),
               ("Last change", e(_when(case.updated_at))),
               *([("Imported", e(f"{_when(case.imported_at)} by {case.imported_by} from bundle sha256 "
                                 f"{case.import_source}"))] if case.imported_at else []),
               ("Content fingerprint", f'<span class="hash">{e(digest)}</span>'),
               ("Report generated", e(f"{generated} by geoapp {__version__}"))]),
        f'<p class="pre">{e(case.description)}</p></header>' if case.description else "</header>",
    ]
    if random_used:
        parts.append('<div class="bad">This case contains analyses made with RANDOM model weights (test mode). '
                     "Their results are meaningless.</div>")
    sections = [
        ("integrity", "Evidence integrity", _integrity(problems, case)),
        ("verdict", "Verdict", _verdict_section(case)),
        ("claims", "Claim", _claims_section(case)),
        ("clues", "Clues and credible areas", clues_report_section(case, e)),
        ("map", "Map", _maps(case)),
        ("evidence", "Evidence", _evidence_section(store, case, by_sha)),
        ("analyses", "Analyses", "".join(_analysis_block(store, a, names, by_sha) for a in case.analyses)
         or '<p class="muted">No analyses.</p>'),
        ("notes", "Notes", _notes_section(case)),
        ("audit", "Audit trail", _audit_section(events)),
    ]
    for anchor, title, body in sections:
        parts.append(f'<section id="{anchor}"><h2>{e(title)}</h2>{body}</section>')
    parts.append(f'<footer class="muted"><p>Case {e(case.id)} — fingerprint {e(digest[:16])}… — generated {e(generated)}'
                 "</p></footer></body></html>\n")
    return "".join(parts)

