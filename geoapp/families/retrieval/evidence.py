"""Evidence of fine refinement: where each shown place was on the gallery and where it moved (torch-free)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from geoapp.families.base import EvidenceItem, MapLayer
from geoapp.geo.distance import haversine_km


@dataclass
class RefinementEvidence(EvidenceItem):
    """Per shown candidate: the gallery answer it started from and the refined point it moved to.

    Analysts need to know that a pin is not a gallery point (a photo location someone took) but a
    point the location encoder preferred near one; the map draws each move as a dashed line.
    """

    moves: list[tuple[int, tuple[float, float], tuple[float, float]]]  # (rank, gallery point, refined point)
    radius_km: float
    step_km: float
    key: str = "refinement"
    title: str = "Fine refinement"

    def _rows(self) -> list[tuple[int, tuple[float, float], tuple[float, float], float]]:
        return [(rank, start, end, float(haversine_km(start[0], start[1], end[0], end[1])))
                for rank, start, end in self.moves]

    def to_dict(self) -> dict:
        return {"radius_km": self.radius_km, "step_km": self.step_km,
                "moves": [{"rank": rank, "gallery_lat": round(s[0], 6), "gallery_lon": round(s[1], 6),
                           "lat": round(e[0], 6), "lon": round(e[1], 6), "moved_km": round(km, 3)}
                          for rank, s, e, km in self._rows()]}

    def map_layers(self) -> list[MapLayer]:
        features = []
        for rank, start, end, km in self._rows():
            if km < 0.001:  # stayed on its gallery answer
                continue
            features.append({
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[start[1], start[0]], [end[1], end[0]]]},
                "properties": {"stroke": "#7b3294", "weight": 2, "rank": rank,
                               "tooltip": f"#{rank}: refined {km:.1f} km from the gallery answer"}})
        return [MapLayer("Fine refinement (gallery answer → refined point)", tuple(features))] if features else []

    def html(self) -> str:
        rows = "".join(
            f"<tr><td>#{rank}</td><td>{s[0]:.4f}, {s[1]:.4f}</td><td>{e[0]:.4f}, {e[1]:.4f}</td>"
            f"<td>{km:.2f} km</td></tr>" for rank, s, e, km in self._rows())
        intro = (f"Each place moved to the best-scoring point within {self.radius_km:g} km of its gallery answer "
                 f"(searched down to {self.step_km:g} km). A refined point is where the location encoder fits the "
                 "photo best, not a place a photo is known to come from.")
        return (f"<p>{html.escape(intro)}</p><table class=\"geoapp-table\"><thead><tr><th>rank</th>"
                "<th>gallery answer</th><th>refined point</th><th>moved</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")
