"""One fused map per video: its keyframes' maps multiplied (same-shot frames tempered), outliers left out.

Input: the per-keyframe predictions of one video (their ``image["video"]`` holds ``time_s``, ``shot``,
``phash``), as ``geoapp.engine.video_inputs`` writes them; nothing is decoded again, so an analyst can put an
outlier back and fuse again at once.

**Tempering** (the rule of ``geoapp.fusion.tempering``: ``t_i = 1 / sum_j s_ij``): two frames of the same shot
are one camera looking at one place, so their similarity is at least ``SAME_SHOT`` (0.5) and more when their
perceptual hashes are close; frames of different shots count as related only through their hashes (cutting back
to the same view). A shot of k near-identical frames thus counts about once; k distinct views of one shot
count about (k + 1) / 2 times.

**Outliers** (a cut to a studio, a map graphic, another place): each frame's own evidence (its map without the
uniform floor, on the coarse ~220 km grid) is compared with the *mixture* of the other frames' evidence (a
frame is checked against every place some other frame points at, so honest scatter between frames is not an
outlier). A frame with less than ``OUTLIER_SHARE`` (5 %) of its evidence inside the mixture's 50 % core is
flagged and left out, with that share and the distance of its top place from the others' in the reason.
(The core, not the 90 % area: maps of real models have long tails that reach every continent, and a studio
frame's map then still put ~9 % inside the others' 90 % area on our flyovers; a frame whose map is split
between the others' place and a far one is not an outlier, and the product keeps the shared part.)
When more than half of the frames would be flagged, the frames disagree with each other rather than with a
majority: none is left out and the record says so. Frames listed in ``keep`` (times in seconds, as in the
sources ``clip.mp4#t=12.48``) are never left out; ``keep="all"`` keeps every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoapp.fusion.areas import mass_above
from geoapp.fusion.density import grid_mass
from geoapp.fusion.grid import Grid
from geoapp.fusion.posterior import PhotoMap, Posterior, fuse
from geoapp.fusion.tempering import Tempering, hash_similarity

SAME_SHOT = 0.5
OUTLIER_SHARE = 0.05
OUTLIER_LEVEL = 0.5
TIME_TOLERANCE_S = 0.006  # a time as written in a source (2 decimals) names its frame
FUSED_TOP_K = 5


@dataclass(frozen=True)
class Outlier:
    source: str
    time_s: float
    share: float  # of the frame's evidence inside the other frames' 90 % area
    distance_km: float | None  # from its top place to the other frames' fused top place
    reason: str

    def to_dict(self) -> dict:
        return {"source": self.source, "time_s": self.time_s, "share": round(self.share, 6),
                "distance_km": None if self.distance_km is None else round(self.distance_km, 1), "reason": self.reason}


@dataclass
class VideoFusion:
    """The fused map of one video and what went into it."""

    source: str
    posterior: Posterior | None
    used: list[str]  # frame sources in the fusion
    outliers: list[Outlier] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # flagged, but put back by the analyst
    notes: list[str] = field(default_factory=list)

    def to_dict(self, levels: tuple[float, ...] = (0.9,)) -> dict:
        return {"used": list(self.used), "outliers": [o.to_dict() for o in self.outliers], "kept": list(self.kept),
                "notes": list(self.notes), "tempering": self.posterior.tempering.to_dict()
                if self.posterior is not None and self.posterior.tempering else None,
                "areas": [{**a.to_dict(), "geometry": a.geometry} for a in self.posterior.areas(levels)]
                if self.posterior is not None else []}


def frame_facts(prediction) -> dict:
    return (getattr(prediction, "image", None) or {}).get("video") or {}


def frame_tempering(frames: list) -> Tempering:
    """Same shot: similarity at least ``SAME_SHOT``; any two frames: at least their pHash similarity."""
    facts = [frame_facts(p) for p in frames]
    n = len(frames)
    s = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = facts[i], facts[j]
            value = 0.0
            if a.get("phash") and b.get("phash"):
                value = hash_similarity(bin(int(a["phash"], 16) ^ int(b["phash"], 16)).count("1"))
            if a.get("shot") is not None and a.get("shot") == b.get("shot"):
                value = max(value, SAME_SHOT)
            s[i, j] = s[j, i] = value
    return Tempering.from_similarity(s, f"video frames: same shot similarity >= {SAME_SHOT}, else pHash; "
                                        "t_i = 1 / sum_j s_ij")


def _wanted(keep, time_s: float) -> bool:
    if keep == "all":
        return True
    return any(abs(float(t) - time_s) <= TIME_TOLERANCE_S for t in keep or ())


def find_outliers(frames: list, weights: tuple[float, ...]) -> tuple[list[Outlier], list[str]]:
    """(flagged frames, notes): each frame's evidence against the mixture of the others' (see the module)."""
    from geoapp.geo.distance import haversine_km

    n = len(frames)
    if n < 3:
        return [], ([f"{n} frame(s): too few to tell an outlier from the rest"] if n else [])
    grid = Grid.base()
    evidence = []
    for p in frames:
        photo = PhotoMap.from_prediction(p)
        mass = grid_mass(grid, photo.points, photo.kernel)
        e = np.maximum(mass - photo.kernel.floor * grid.area_km2 / grid.area_km2.sum(), 0.0)
        evidence.append(e / max(e.sum(), 1e-300))
    evidence = np.asarray(evidence)
    w = np.asarray(weights, np.float64)
    flagged = []
    for i, p in enumerate(frames):
        others = np.delete(np.arange(n), i)
        mixture = (w[others, None] * evidence[others]).sum(axis=0) / w[others].sum()
        inside = mass_above(mixture / grid.area_km2, mixture) < OUTLIER_LEVEL
        share = float(evidence[i][inside].sum())
        if share >= OUTLIER_SHARE:
            continue
        top = p.top
        centre = int(np.argmax(mixture))
        distance = float(haversine_km(top.lat, top.lon, grid.lat[centre], grid.lon[centre])) if top else None
        where = f"; its top place ({top.place_label or f'{top.lat:.2f}, {top.lon:.2f}'}) is {distance:,.0f} km from " \
                "the others' most probable area" if top else ""
        flagged.append(Outlier(p.source, float(frame_facts(p).get("time_s", 0.0)), share,
                               distance, f"its map disagrees with the other frames: {share:.1%} of it lies in their "
                                         f"{OUTLIER_LEVEL:.0%} area (under {OUTLIER_SHARE:.0%}){where}"))
    if len(flagged) * 2 > n:
        return [], [f"{len(flagged)} of {n} frames disagree with the others: no majority, none left out"]
    return flagged, []


def fuse_frames(source: str, frames: list, *, keep=(), clues=(), calibrations: list | None = None) -> VideoFusion:
    """Fuse one video's frame predictions (errors skipped); ``keep``: frame times never left out, or "all"."""
    ok = [p for p in frames if p.ok and (p.surface is not None or p.candidates)]
    if not ok:
        return VideoFusion(source, None, [], notes=["no frame was predicted: nothing to fuse"])
    outliers, notes = find_outliers(ok, frame_tempering(ok).weights)
    kept = [o.source for o in outliers if _wanted(keep, o.time_s)]
    left_out = {o.source for o in outliers if o.source not in kept}
    used = [p for p in ok if p.source not in left_out]
    by_source = {p.source: c for p, c in zip(ok, calibrations or [None] * len(ok))}
    posterior = fuse(used, list(clues), frame_tempering(used), calibrations=[by_source[p.source] for p in used])
    return VideoFusion(source, posterior, [p.source for p in used], [o for o in outliers if o.source in left_out],
                       kept, notes)
