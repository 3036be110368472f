"""The fused map in words: credible areas with km², the clue table, conflicts, the EXIF proposals and the
claimed place's position. Plain data in, Markdown out (no Gradio); user text is escaped."""

from __future__ import annotations

from geoapp.ui.views import escape

CLUE_COLUMNS = ["Clue", "Kind", "From", "Hard/soft", "Globe left", "What it says"]


def fusion_markdown(fused, claimed: tuple[float, float] | None = None) -> str:
    """Everything the Clues panel reports under the map for one fused map (empty without one)."""
    if fused is None:
        return ""
    post = fused.posterior
    photos = ", ".join(escape(p) for p in fused.photos) or "no photo"
    title = "Fused map of the same place" if len(fused.photos) > 1 else "Fused map"
    lines = [f"### {title} ({photos})", "", "**Credible areas** (where the photo was taken, with this probability):", ""]
    lines += [f"- {escape(area.summary())}" for area in sorted(fused.areas, key=lambda a: a.level)]
    if not any(area.calibrated for area in fused.areas):
        lines += ["", "_Not calibrated: the percentages are the map's own, not a checked coverage._"]
    if claimed is not None:
        lines += ["", f"**Claimed location** {claimed[0]:.5f}, {claimed[1]:.5f}: "
                      f"{escape(fused.position_of(*claimed))}."]
    for conflict in post.conflicts:
        lines += ["", f"**Conflict:** {' × '.join(escape(n) for n in conflict.names)}: {escape(conflict.detail)}"]
    for warning in post.warnings:
        lines += ["", f"**Warning:** {escape(warning)}"]
    rows = fused.clue_rows()
    if rows:
        lines += ["", "| " + " | ".join(CLUE_COLUMNS) + " |", "|" + "---|" * len(CLUE_COLUMNS)]
        lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    if post.tempering is not None and len(fused.photos) > 1:
        weights = ", ".join(f"{w:.2f}" for w in post.tempering.weights)
        lines += ["", f"Photos tempered (near-duplicates count once): weights {weights}."]
    for proposal in fused.proposals:
        lines += ["", f"**EXIF proposes** {escape(proposal)} — EXIF can be edited, so it is not applied; "
                      "add the line to the clues to use it."]
    return "\n".join(lines)
