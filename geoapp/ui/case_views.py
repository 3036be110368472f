"""Cases -> what the Cases tab shows: tables, choices, Markdown/HTML panels and the case map.

Plain data in, plain data out (no Gradio), like :mod:`geoapp.ui.views`. Every text an analyst
or a file supplied (titles, names, notes, place labels) is escaped before it becomes Markdown/HTML.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from geoapp.ui.maps.render import ClaimArea, MapOptions, ReferencePoint, case_map_html
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING
from geoapp.results.textsafe import display_text
from geoapp.ui.case_service import stored_prediction
from geoapp.ui.service import CLAIM_COLOUR, EXIF_COLOUR
from geoapp.ui.views import escape, percent

# Widths (each table spans the page) leave every header and every id, hash and number on one line at 1280 px.
CASE_COLUMNS = ["Id", "Title", "Status", "Evidence", "Analyses", "Verdict", "Last change"]
CASE_COLUMN_WIDTHS = ["9%", "35%", "9%", "9%", "9%", "12%", "17%"]
EVIDENCE_COLUMNS = ["File", "EXIF GPS", "Capture time", "Pixels", "Size", "SHA-256", "Added by", "Id"]
EVIDENCE_COLUMN_WIDTHS = ["25%", "14%", "14%", "9%", "8%", "14%", "8%", "8%"]
SHA_SHOWN = 16  # hex digits of the SHA-256 in the table (64 bits: enough to tell files apart by eye)
CLAIM_COLUMNS = ["Claimed place", "Kind", "Claimed time", "Source", "By", "Id"]
CLAIM_COLUMN_WIDTHS = ["30%", "9%", "16%", "29%", "8%", "8%"]
ANALYSIS_COLUMNS = ["Id", "Evidence", "Model", "Settings", "Top candidate", "Probability", "Weights", "By", "At"]
ANALYSIS_COLUMN_WIDTHS = ["7%", "13%", "13%", "12%", "16%", "9%", "12%", "7%", "11%"]  # 100 %: nothing cut off
CLUE_COLUMNS = ["Clue", "Kind", "Source", "Added by", "At", "Id"]
CLUE_COLUMN_WIDTHS = ["42%", "9%", "17%", "10%", "13%", "9%"]
AREA_ANALYSES_SHOWN = 5  # the newest analyses get their areas drawn up (each is one fusion on the grid)
CANDIDATE_COLUMNS = ["Rank", "Probability", "Latitude", "Longitude", "Place", "km from #1"]
EVENT_COLUMNS = ["At", "Who", "Action", "What", "Details"]
VERDICT_HELP = {"supported": "the evidence supports the claim", "contradicted": "the evidence contradicts the claim",
                "inconclusive": "the evidence does not settle it"}


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def _km(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} km" if value >= 10 else f"{value:.1f} km"


def _short(identifier: str | None) -> str:
    return (identifier or "")[:8]


# ---------------------------------------------------------------------------- case list
def case_rows(summaries: Sequence) -> list[list]:
    return [[_short(s.id), s.title, s.status, s.evidence, s.analyses, s.verdict or "—", when(s.updated_at)]
            for s in summaries]


def case_choices(summaries: Sequence) -> list[tuple[str, str]]:
    return [(f"{s.title} · {s.status} · {_short(s.id)}", s.id) for s in summaries]


# ---------------------------------------------------------------------------- one case
def header_markdown(case) -> str:
    verdict = case.verdict
    parts = [f"## {escape(case.title)}",
             f"Case `{case.id}` · status **{escape(case.status)}** · created {when(case.created_at)} by "
             f"{escape(case.created_by)} · last change {when(case.updated_at)}"]
    if case.imported_at is not None:
        parts.append(f"Imported {when(case.imported_at)} by {escape(case.imported_by or '?')} from a bundle "
                     f"(SHA-256 `{escape(case.import_source or '?')}`).")
    if case.description:
        parts.append(escape(case.description))
    if verdict is not None:
        parts.append(f"Current verdict: **{escape(verdict.verdict)}** ({when(verdict.created_at)}, "
                     f"{escape(verdict.created_by)})")
    return "\n\n".join(parts)


def banner_html(case, problems: Sequence) -> str:
    """Integrity problems first and impossible to miss; then the random-weights flag."""
    blocks = []
    if problems:
        items = "".join(f"<li>{html.escape(p.message)}</li>" for p in problems)
        blocks.append('<div class="geoapp-random" role="alert"><b>EVIDENCE INTEGRITY PROBLEM.</b> Files of this case '
                      "are missing or no longer match the SHA-256 recorded when they were added. Do not rely on "
                      f"them; the problem is recorded in the audit trail.<ul>{items}</ul></div>")
    if any(a.random_weights for a in case.analyses):
        blocks.append('<div class="geoapp-random" role="alert"><b>RANDOM WEIGHTS — NOT REAL RESULTS.</b> Analyses '
                      f"marked so: {html.escape(RANDOM_WEIGHTS_WARNING.split(':', 1)[1].strip())}</div>")
    return "".join(blocks)


def evidence_rows(case) -> list[list]:
    rows = []
    for e in case.evidence:
        gps = e.gps
        rows.append([_evidence_name(e), f"{gps[0]:.5f}, {gps[1]:.5f}" if gps else "—",
                     _capture_time(e.exif) if e.kind != "video" else str((e.media or {}).get("creation_time") or "—"),
                     f"{e.width}×{e.height}", f"{e.file_size / 1e6:.2f} MB",
                     e.sha256[:SHA_SHOWN] + "…", e.added_by, _short(e.id)])
    return rows


def _evidence_name(e) -> str:
    """A video says so (duration, keyframes kept); a keyframe reads as derived from it."""
    name = display_text(e.original_name)
    media = e.media or {}
    if e.kind == "video":
        duration = media.get("duration_s")
        length = f"{float(duration):.1f} s, " if duration is not None else ""
        return f"{name} (video, {length}{media.get('keyframes', '?')} keyframes)"
    if e.kind == "frame":
        return f"↳ {name} (keyframe, shot {media.get('shot', '?')})"
    return name


def _capture_time(exif: dict | None) -> str:
    """EXIF capture time as date and time ("2008-10-22 16:28:39": may wrap between the two, never inside)."""
    value = str((exif or {}).get("capture_time") or "")
    return value.replace("T", " ", 1) if value else "—"


def evidence_choices(case) -> list[tuple[str, str]]:
    return [(f"{display_text(e.original_name)} ({_short(e.id)})", e.id) for e in case.evidence]


def claim_rows(case) -> list[list]:
    return [[c.label, c.kind, c.claimed_time or "—", c.source or "—", c.created_by, _short(c.id)] for c in case.claims]


def claim_choices(case) -> list[tuple[str, str]]:
    return [(f"{c.label} ({_short(c.id)})", c.id) for c in reversed(case.claims)]  # newest first: the default


def _names(case) -> dict[str, str]:
    return {e.id: display_text(e.original_name) for e in case.evidence}


def _settings(parameters: dict) -> str:
    parts = [f"top {parameters.get('top_k', '?')}"]
    if parameters.get("tencrop"):
        parts.append("TenCrop")
    if parameters.get("region"):
        parts.append(f"region {parameters['region']}")
    return ", ".join(parts)


def analysis_rows(case) -> list[list]:
    names = _names(case)
    rows = []
    for a in case.analyses:
        top = (a.candidates or [{}])[0]
        rows.append([_short(a.id), names.get(a.evidence_id, "?"), f"{a.model} / {a.backbone}", _settings(a.parameters or {}),
                     top.get("place") or (f"{top['lat']:.3f}, {top['lon']:.3f}" if "lat" in top else "—"),
                     percent(top["probability"]) if "probability" in top else "—",
                     "RANDOM (not real)" if a.random_weights else a.backbone_weights or "pretrained",
                     a.created_by, when(a.finished_at)])
    return rows


def analysis_choices(case) -> list[tuple[str, str]]:
    names = _names(case)
    choices = []
    for a in reversed(case.analyses):  # newest first: the default
        top = (a.candidates or [{}])[0]
        flag = " — RANDOM WEIGHTS" if a.random_weights else ""
        choices.append((f"{names.get(a.evidence_id, '?')} → {top.get('place') or 'no place name'} "
                        f"({_short(a.id)}, {when(a.finished_at)}){flag}", a.id))
    return choices


def candidate_rows(analysis) -> list[list]:
    if analysis is None:
        return []
    return [[c["rank"], percent(c["probability"]), round(c["lat"], 4), round(c["lon"], 4), c.get("place") or "—",
             _km(c.get("distance_to_top_km"))] for c in analysis.candidates or []]


def clue_rows(case) -> list[list]:
    return [[c.text, c.kind, c.source, c.created_by, when(c.created_at), _short(c.id)] for c in case.clues]


def areas_markdown(case) -> str:
    """Each analysis (newest first) times the case's clues: its credible areas (calibrated or not, as stored
    for its model) and where the latest claim lies, the statement the report makes."""
    from geoapp.cases.clues import analysis_areas, latest_claim_point

    if not case.analyses:
        return "_Credible areas appear here once an analysis is recorded (each analysis × the clues above)._"
    names = _names(case)
    claim, point = latest_claim_point(case)
    lines = [f"**Credible areas** (each analysis × {len(case.clues)} clue(s)):"]
    for analysis in list(reversed(case.analyses))[:AREA_ANALYSES_SHOWN]:
        areas = analysis_areas(analysis, case.clues, point)
        if areas is None:
            continue
        flag = " — RANDOM WEIGHTS" if analysis.random_weights else ""
        lines.append(f"\n*{escape(names.get(analysis.evidence_id, '?'))}* ({_short(analysis.id)}{flag}):")
        lines.extend(f"- {escape(a.summary())}" for a in areas.areas)
        if areas.claim:
            lines.append(f"- The claimed place ({escape(claim.label)}) lies {escape(areas.claim)}.")
        lines.extend(f"- ⚠ Conflict: {escape(c)}" for c in areas.conflicts)
    if len(case.analyses) > AREA_ANALYSES_SHOWN:
        lines.append(f"\n_{len(case.analyses) - AREA_ANALYSES_SHOWN} older analyses: see the report._")
    return "\n".join(lines)


def notes_markdown(case) -> str:
    if not case.notes:
        return "_No notes yet._"
    return "\n\n".join(f"**{escape(n.created_by)}**, {when(n.created_at)}:\n\n{escape(n.text)}"
                       for n in reversed(case.notes))


def verdict_history_markdown(case) -> str:
    if not case.verdicts:
        return "_No verdict yet._"
    lines = []
    for v in reversed(case.verdicts):
        lines.append(f"- **{escape(v.verdict)}** — {when(v.created_at)}, {escape(v.created_by)}: {escape(v.rationale)}")
    return "Verdicts, newest (current) first:\n\n" + "\n".join(lines)


def event_rows(events: Sequence) -> list[list]:
    rows = []
    for e in reversed(events):
        details = ", ".join(f"{k}={v}" for k, v in (e.details or {}).items() if v not in (None, "", [], {}))
        rows.append([when(e.at), e.actor + (" (imported)" if e.imported else ""), e.action,
                     f"{e.entity_type} {_short(e.entity_id)}".strip(), details[:300]])
    return rows


# ---------------------------------------------------------------------------- verdict evidence
def figures_markdown(figures: dict, case) -> str:
    """The computed evidence shown before the analyst decides (the same figures the verdict stores)."""
    summary = figures.get("summary") or {}
    claim = figures.get("claim")
    notes = list(figures.get("notes") or [])
    if claim is None:
        return "**Computed evidence:** record a claim first; there is nothing to compare with yet."
    chosen = next((f for f in figures.get("analyses") or [] if f["analysis_id"] == figures.get("analysis_id")), None)
    names = _names(case)
    head = f"**Computed evidence** for the claim **{escape(claim['label'])}**"
    if chosen is not None:
        head += f" and the analysis of **{escape(names.get(chosen['evidence_id'], '?'))}** ({_short(chosen['analysis_id'])})"
    lines = [head, "", "| Figure | Value |", "|---|---|"]
    if chosen is not None:
        edge = chosen.get("distance_to_area_km")
        inside = chosen.get("top_inside_claim")
        lines.append(f"| Distance claim → top candidate | {_km(summary.get('distance_km'))}"
                     + (" (inside the claimed area)" if inside else f" ({_km(edge)} from the claimed area's edge)"
                        if edge is not None else "") + " |")
        mass = summary.get("mass_in_claim")
        exact = "" if chosen.get("mass_exact") else " (estimated from the stored surface)"
        lines.append(f"| Probability mass inside the claimed area | {percent(mass) if mass is not None else '—'}{exact} |")
        rank = summary.get("claim_rank")
        lines.append("| Rank of the claim among the candidates | "
                     + (f"#{rank}" if rank else "no candidate lies inside the claimed area") + " |")
        areas = figures.get("areas")
        if areas:
            where = f"; the claimed place lies {areas['claim']}" if areas.get("claim") else ""
            lines.append(f"| Credible areas (× {len(areas.get('clues') or [])} clue(s)) | "
                         + escape("; ".join(level["summary"] for level in areas.get("levels") or []) + where) + " |")
    else:
        lines.append("| Model figures | no analysis yet: run one in 'Analyse evidence' |")
    exif = [row for row in figures.get("exif") or [] if row.get("gps")]
    lines.append(f"| EXIF GPS → claim | {_km(summary.get('exif_distance_km')) if exif else 'no evidence file has EXIF GPS'} |")
    for row in figures.get("exif") or []:
        facts = []
        if row.get("gps"):
            facts.append(f"GPS {_km(row['distance_km'])} from the claim" + (", inside it" if row.get("inside_claim") else ""))
        if row.get("time_difference_days") is not None:
            facts.append(f"captured {row['time_difference_days']:+.1f} days from the claimed time")
        if facts:
            lines.append(f"| EXIF of {escape(row['name'])} | {'; '.join(facts)} |")
    random = chosen is not None and chosen.get("random_weights")
    text = "\n".join(lines)
    if notes:
        text += "\n\n" + "\n".join(f"- {escape(n)}" for n in notes)
    caveats = (chosen or {}).get("caveats") or []
    if caveats:
        # The family's caveat sits right above the figures it qualifies (e.g. SatWorld on a ground photo).
        items = " ".join(escape(c) for c in caveats)
        text = (f'<div class="geoapp-warning geoapp-caveat" role="note"><b>Model caveat ({escape(chosen.get("model") or "")})'
                f":</b> {items}</div>\n\n" + text)
    if random:
        text = ('<div class="geoapp-random"><b>RANDOM WEIGHTS:</b> the model figures below come from an untrained '
                "test model and are meaningless.</div>\n\n" + text)
    return text


# ---------------------------------------------------------------------------- the case map
def case_map_page(case, analysis_id: str | None, options: MapOptions) -> str:
    """Claimed areas, EXIF GPS of every file, and the candidates of the chosen analysis."""
    from geoapp.cases.claims import claim_region

    claims = [ClaimArea(c.label, claim_region(c.region_key)) for c in case.claims]
    references = [ReferencePoint(f"EXIF GPS of {e.original_name}", e.gps[0], e.gps[1], EXIF_COLOUR)
                  for e in case.evidence if e.gps is not None]
    references += [ReferencePoint(f"Claimed point: {c.label}", c.lat, c.lon, CLAIM_COLOUR)
                   for c in case.claims if c.lat is not None and c.lon is not None]
    analysis = next((a for a in case.analyses if a.id == analysis_id), None)
    title = case.title
    if analysis is not None:
        title += f" — candidates for {_names(case).get(analysis.evidence_id, '?')}"
    return case_map_html(options, prediction=stored_prediction(analysis) if analysis is not None else None,
                         claims=claims, references=references, title=title)
