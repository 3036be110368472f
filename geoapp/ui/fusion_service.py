"""Evidence fusion for Locate (and the /locate API): photo maps x the analyst's clues -> credible areas.

No Gradio here. The fusing itself is :func:`geoapp.fusion.fuse`; this module only decides what is fused
(each photo with the clues, or all photos as one place with the tempering rule), finds each model's
calibration, and reads off what the page shows: areas, the clue table, conflicts and the claimed place's
position relative to the areas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoapp.fusion import LEVELS, ClueError, CredibleArea, Posterior, Tempering, find_calibration, fuse, parse_clue
from geoapp.fusion import proposed_from_exif
from geoapp.ui.forms import FormError

MAX_CLUES = 20


def parse_clue_lines(text: str | None) -> tuple[str, ...]:
    """The clues of the Clues box: one per line, in the CLI's ``--clue`` syntax; ``#`` switches a line off.

    Each is parsed here, so a bad clue stops the run before any model loads, with a message naming it.
    """
    lines = [line.strip() for line in str(text or "").splitlines()]
    clues = tuple(line for line in lines if line and not line.startswith("#"))
    if len(clues) > MAX_CLUES:
        raise FormError(f"{len(clues)} clues; at most {MAX_CLUES} (switch some off with a leading #)")
    for clue in clues:
        try:
            parse_clue(clue)
        except ClueError as error:
            raise FormError(f"Clue {clue!r}: {error}") from error
    return clues


@dataclass
class FusedMap:
    """One fused map as the page shows it."""

    posterior: Posterior
    photos: tuple[str, ...]  # the photo names fused into it
    areas: list[CredibleArea] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)  # EXIF clues proposed, not applied

    def clue_rows(self) -> list[list]:
        """Clue, kind, where from, hard/soft, share of the globe it leaves (one row per clue layer)."""
        grid = self.posterior.grid
        return [[layer.name, layer.kind, layer.source, "hard" if layer.hard else "soft",
                 f"{layer.share_of_globe(grid):.2%}", "set aside (conflict)" if layer.name in self.posterior.dropped
                 else layer.description]
                for layer in self.posterior.layers if layer.kind != "photo"]

    def position_of(self, lat: float, lon: float) -> str:
        """Where a place lies relative to the areas: "inside the 80 % area" / "outside the 95 % area"."""
        grid = self.posterior.grid
        cell = int(grid.locate(np.array([lat]), np.array([lon]))[0])
        for area in sorted(self.areas, key=lambda a: a.level):
            if cell in set(area.cells.tolist()):
                return f"inside the {area.level * 100:g} % area ({area.calibration})"
        widest = max(self.areas, key=lambda a: a.level)
        return f"outside the {widest.level * 100:g} % area ({widest.calibration})"

    def to_dict(self) -> dict:
        """What the API returns: the areas as GeoJSON, the clue table, conflicts and warnings."""
        post = self.posterior
        return {"photos": list(self.photos), "source": post.source,
                "areas": {"type": "FeatureCollection", "features": [a.to_feature() for a in self.areas]},
                "summaries": [a.summary() for a in self.areas],
                "clues": [layer.to_dict(post.grid) for layer in post.layers if layer.kind != "photo"],
                "conflicts": [c.to_dict() for c in post.conflicts], "dropped": list(post.dropped),
                "warnings": list(post.warnings), "proposed_clues": list(self.proposals),
                "tempering": post.tempering.to_dict() if post.tempering else None}


def fuse_located(results: list, clue_texts: tuple[str, ...], same_place: bool, region: str | None = None,
                 levels: tuple[float, ...] = LEVELS, apply_exif: bool = False) -> list[FusedMap | None]:
    """One fused map per result (None where the photo could not be analysed); with ``same_place``, one
    map of all photos, shared by every result. The search region becomes a hard clue, as on the CLI.
    ``apply_exif``: the analyst accepted the time-zone clue each photo's EXIF proposes (EXIF can be edited,
    so it is never applied unasked); it joins that photo's clues, or all of them for one place."""
    texts = list(clue_texts)
    if region and not any(t.lower().startswith("region:") for t in texts):
        texts.append(f"region:{region}")
    clues = [parse_clue(t) for t in texts]
    ok = [r for r in results if r.prediction.ok]
    accepted = {id(r): _accepted_exif_clue(r, {c.text for c in clues}) if apply_exif else None for r in ok}
    calibrations = [find_calibration(r.prediction.model or {}) for r in ok]
    if same_place and len(ok) > 1:
        from geoapp.imaging.phash import phash_hex

        extra = list({c.text: c for c in accepted.values() if c is not None}.values())
        tempering = Tempering.from_hashes([phash_hex(r.path) for r in ok])
        post = fuse([r.prediction for r in ok], clues + extra, tempering, calibrations=calibrations)
        shared = _fused(post, ok, clues + extra)
        return [shared if r.prediction.ok else None for r in results]
    maps = {}
    for r, c in zip(ok, calibrations):
        own = clues + ([accepted[id(r)]] if accepted[id(r)] is not None else [])
        maps[id(r)] = _fused(fuse([r.prediction], own, calibrations=[c]), [r], own, levels)
    return [maps.get(id(r)) for r in results]


def _exif_proposal(located):
    """The time-zone clue the photo's EXIF capture time (with its offset) proposes, or None."""
    return proposed_from_exif(((located.prediction.image or {}).get("exif") or {}).get("capture_time"))


def _accepted_exif_clue(located, given: set[str]):
    """The photo's EXIF time-zone proposal as an accepted clue (None without one, or when already given)."""
    proposal = _exif_proposal(located)
    if proposal is None or proposal.text in given:
        return None
    return parse_clue(proposal.text, source=f"EXIF OffsetTimeOriginal of {located.name} (accepted by the analyst)")


def _fused(post: Posterior, located: list, clues: list, levels: tuple[float, ...] = LEVELS) -> FusedMap:
    given = {c.text for c in clues}
    proposals = []
    for r in located:
        proposal = _exif_proposal(r)
        if proposal is not None and proposal.text not in given and proposal.text not in proposals:
            proposals.append(proposal.text)
    return FusedMap(post, tuple(r.name for r in located), post.areas(levels), proposals)
