"""What the map-tile search shows an analyst (torch-free): the search path and the best final tiles.

* :class:`SearchPath`: the tiles kept at every zoom level with their scores, as a table and as a
  map layer of nested rectangles coloured by score (``EvidenceItem.map_layers``);
* :class:`TileThumbnails`: the best tiles of the last level as images, next to the photo.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from PIL import Image

from geoapp.families.base import EvidenceItem, MapLayer, png_data_uri
from geoapp.families.maptiles.search import SearchResult, tile_boxes
from geoapp.geo.tiles import tile_center

# Low -> high score within a level (blue, teal, yellow, orange, red): readable on imagery and on plain maps.
SCORE_COLOURS = ("#3949ab", "#00897b", "#fdd835", "#fb8c00", "#d32f2f")


def score_colour(fraction: float) -> str:
    index = int(round(float(np.clip(fraction, 0.0, 1.0)) * (len(SCORE_COLOURS) - 1)))
    return SCORE_COLOURS[index]


@dataclass(frozen=True)
class PathTile:
    zoom: int
    x: int
    y: int
    rank: int  # 1 = best at its level
    score: float  # cosine similarity to the photo
    bounds: tuple[float, float, float, float]  # west, south, east, north
    seed: bool = False  # kept beyond the best k because it holds a seed (GeoCLIP's candidate)

    def to_dict(self) -> dict:
        return {"z": self.zoom, "x": self.x, "y": self.y, "rank": self.rank, "score": round(self.score, 6),
                "bounds": [round(v, 6) for v in self.bounds], "seed": self.seed}


class SearchPath(EvidenceItem):
    """The tiles the beam kept at each zoom level, best first."""

    key = "search_path"
    title = "Map-tile search path (tiles kept per zoom level)"

    def __init__(self, levels: list[tuple[int, int, list[PathTile]]], k: int) -> None:
        self.levels = levels  # (zoom, tiles scored, kept tiles)
        self.k = int(k)

    @classmethod
    def from_result(cls, result: SearchResult, k: int) -> SearchPath:
        levels = []
        for step in result.steps:
            kept = step.kept_tiles()
            boxes = tile_boxes(kept)
            best = len(step.kept) - step.seeded  # seed tiles come after the best k
            tiles = [PathTile(int(t[0]), int(t[1]), int(t[2]), rank, float(step.scores[i]), tuple(map(float, box)),
                              seed=rank > best)
                     for rank, (t, i, box) in enumerate(zip(kept, step.kept, boxes), start=1)]
            levels.append((step.zoom, int(len(step.tiles)), tiles))
        return cls(levels, k)

    def to_dict(self) -> dict:
        return {"k": self.k, "levels": [{"zoom": z, "scored": n, "kept": [t.to_dict() for t in kept]}
                                        for z, n, kept in self.levels]}

    def map_layers(self) -> list[MapLayer]:
        features = []
        for depth, (zoom, _, kept) in enumerate(self.levels):
            if not kept:
                continue
            scores = np.array([t.score for t in kept])
            low, span = float(scores.min()), float(np.ptp(scores)) or 1.0
            for tile in reversed(kept):  # best drawn last, on top
                west, south, east, north = tile.bounds
                colour = score_colour((tile.score - low) / span)
                features.append({
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                                     [west, north], [west, south]]]},
                    "properties": {"stroke": colour, "fill": colour, "weight": 1 + 2 * (tile.rank == 1),
                                   "fill_opacity": 0.04 + 0.08 * depth / max(1, len(self.levels) - 1),
                                   "zoom": zoom, "rank": tile.rank, "score": tile.score,
                                   "tooltip": f"zoom {zoom} · #{tile.rank} of {len(kept)} kept"
                                              f"{' (GeoCLIP seed)' if tile.seed else ''} · "
                                              f"similarity {tile.score:.3f}"}})
        return [MapLayer("Map-tile search path (colour = score within its level)", tuple(features))]

    def html(self) -> str:
        rows = []
        for zoom, scored, kept in self.levels:
            shown = ", ".join(f'<span style="color:{score_colour(1 - i / max(1, len(kept) - 1))}">'
                              f"{t.zoom}/{t.x}/{t.y} ({t.score:.3f})</span>" for i, t in enumerate(kept[:6]))
            more = f" … +{len(kept) - 6}" if len(kept) > 6 else ""
            seeds = [t for t in kept if t.seed]
            if seeds:
                more += "; GeoCLIP seed" + ("s" if len(seeds) > 1 else "") + " kept beyond the best k: " + ", ".join(
                    f"{t.zoom}/{t.x}/{t.y} ({t.score:.3f})" for t in seeds)
            rows.append(f"<tr><td>{zoom}</td><td>{scored:,}</td><td>{len(kept)}</td><td>{shown}{more}</td></tr>")
        return ('<table class="geoapp-search-path"><tr><th>zoom</th><th>tiles scored</th><th>kept</th>'
                "<th>best kept tiles (z/x/y, similarity)</th></tr>" + "".join(rows) + "</table>"
                f"<p><small>Beam search with k = {self.k}: each kept tile is split into the tiles of the next "
                "level and only the best k survive (plus, in a GeoCLIP-seeded search, the tiles holding GeoCLIP's "
                "candidates). The map shows the kept tiles as rectangles.</small></p>")


@dataclass(frozen=True)
class FinalTile:
    rank: int
    zoom: int
    x: int
    y: int
    score: float
    probability: float
    image: Image.Image | None

    def to_dict(self) -> dict:
        lat, lon = tile_center(self.zoom, self.x, self.y)
        return {"rank": self.rank, "z": self.zoom, "x": self.x, "y": self.y, "score": round(self.score, 6),
                "probability": round(self.probability, 6), "centre": [float(lat), float(lon)]}


class TileThumbnails(EvidenceItem):
    """The best tiles of the last level, as the map encoder saw them."""

    key = "best_tiles"
    title = "Best map tiles (last zoom level)"

    def __init__(self, tiles: list[FinalTile], attribution: str = "") -> None:
        self.tiles = list(tiles)
        self.attribution = attribution

    def to_dict(self) -> list[dict]:
        return [tile.to_dict() for tile in self.tiles]

    def images(self) -> dict[str, Image.Image]:
        return {f"tile-{t.rank}-{t.zoom}-{t.x}-{t.y}": t.image for t in self.tiles if t.image is not None}

    def html(self) -> str:
        cells = []
        for tile in self.tiles:
            picture = (f'<img alt="tile {tile.zoom}/{tile.x}/{tile.y}" style="width:128px;height:128px" '
                       f'src="{png_data_uri(tile.image, 128)}"><br>' if tile.image is not None else "")
            cells.append(f'<figure style="display:inline-block;margin:4px;text-align:center">{picture}'
                         f"<figcaption>#{tile.rank} · {tile.zoom}/{tile.x}/{tile.y}<br>similarity {tile.score:.3f}"
                         f" · p {tile.probability:.2f}</figcaption></figure>")
        credit = f"<p><small>Tiles: {html.escape(self.attribution)}</small></p>" if self.attribution else ""
        return "<div>" + "".join(cells) + "</div>" + credit
