"""Hierarchical beam search over zoom levels (Kim, Jang & Kim, §3.1 and §3.3), numpy only.

Level 0: every tile of the first zoom (the paper: zoom 4, 16×16 = 256 tiles), or the tiles that
cover the region. Score them against the photo, keep the best ``k``; replace each kept tile by its
children at the next level's zoom (two zooms down: a 4×4 grid of 16); score those with that level's
encoder; keep the best ``k``; ... The answer is the centre of the best tile of the last level.

Beyond the paper: a region filter applied at every level (the search never leaves the region),
and tiles the source does not have are dropped rather than scored. **Seeded search** (the paper's
future work): the tiles holding *seed* points (GeoCLIP's top candidates) are *added* to the k kept
tiles of every level (k + 1 go on with one seed), so a seed's area is expanded down to the last
level even where the map encoder would have dropped it; they do not compete for the k places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geoapp.geo.tiles import children, latlon_to_tile, tile_bounds, tile_center

# embed(zoom, tiles [N, 3]) -> (unit embeddings [N, D] float32, available [N] bool)
Embed = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]
TileFilter = Callable[[np.ndarray], np.ndarray]  # tiles [N, 3] -> inside [N] bool


class SearchError(ValueError):
    """The search cannot run (no tile available at a level, a bad k); the message says what to do."""


@dataclass
class LevelStep:
    """One level of a search: the tiles scored there, their scores and which were kept."""

    zoom: int
    tiles: np.ndarray  # [N, 3] (z, x, y) scored at this level
    scores: np.ndarray  # [N] cosine similarity to the photo
    kept: np.ndarray  # indices into tiles: the top k, best first, then the seed tiles added beyond them
    seeded: int = 0  # seed tiles kept beyond the top k at this level

    def kept_tiles(self) -> np.ndarray:
        return self.tiles[self.kept]

    def to_dict(self, limit: int | None = None) -> dict:
        kept = self.kept if limit is None else self.kept[:limit]
        return {"zoom": self.zoom, "scored": int(len(self.tiles)), "seeded": self.seeded,
                "kept": [{"z": int(t[0]), "x": int(t[1]), "y": int(t[2]), "score": float(s)}
                         for t, s in zip(self.tiles[kept], self.scores[kept])]}


@dataclass
class SearchResult:
    """Every level of one photo's search; the final level's tiles are the candidates."""

    steps: list[LevelStep]

    @property
    def final(self) -> LevelStep:
        return self.steps[-1]

    @property
    def best_tile(self) -> tuple[int, int, int]:
        z, x, y = (int(v) for v in self.final.tiles[self.final.kept[0]])
        return z, x, y

    @property
    def answer(self) -> tuple[float, float]:
        """(lat, lon): the centre of the best tile of the last level (the paper's answer)."""
        lat, lon = tile_center(*self.best_tile)
        return float(lat), float(lon)

    @property
    def tiles_scored(self) -> int:
        return int(sum(len(step.tiles) for step in self.steps))


def world_tiles(zoom: int) -> np.ndarray:
    """[4**zoom, 3] every tile of a zoom level (row-major from the north-west)."""
    n = 1 << int(zoom)
    yy, xx = np.mgrid[0:n, 0:n]
    return np.stack([np.full(n * n, zoom), xx.ravel(), yy.ravel()], axis=1).astype(np.int64)


def expand(tiles: np.ndarray, zoom: int) -> np.ndarray:
    """The children of ``tiles`` at ``zoom`` ([N * 4**(zoom - z), 3], each parent's block together)."""
    if len(tiles) == 0:
        return tiles.reshape(0, 3)
    levels = int(zoom) - int(tiles[0, 0])
    if levels < 1:
        raise SearchError(f"zoom levels must increase: cannot go from {int(tiles[0, 0])} to {zoom}")
    cz, cx, cy = children(tiles[:, 0], tiles[:, 1], tiles[:, 2], levels)
    return np.stack([cz.reshape(-1), cx.reshape(-1), cy.reshape(-1)], axis=1)


def seed_tiles(seeds: np.ndarray | None, zoom: int) -> np.ndarray:
    """Tiles at ``zoom`` holding the seed points ([S, 2] lat, lon)."""
    if seeds is None or len(seeds) == 0:
        return np.zeros((0, 3), np.int64)
    x, y = latlon_to_tile(seeds[:, 0], seeds[:, 1], zoom)
    return np.stack([np.full(len(x), zoom), x, y], axis=1).astype(np.int64)


def _add_unique(tiles: np.ndarray, extra: np.ndarray) -> np.ndarray:
    if len(extra) == 0:
        return tiles
    known = {tuple(t) for t in tiles.tolist()}
    new = [t for t in {tuple(t) for t in extra.tolist()} if t not in known]
    return np.concatenate([tiles, np.array(sorted(new), np.int64)]) if new else tiles


def _keep(tiles: np.ndarray, scores: np.ndarray, k: int, seeds: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices of the best ``k`` tiles (ties keep tile order), then every seed tile not among them."""
    order = np.argsort(-scores, kind="stable")
    top = order[:int(k)]
    if len(seeds) == 0:
        return top, 0
    chosen = set(top.tolist())
    wanted = {tuple(t) for t in seeds.tolist()}
    extra = [row for row in order[int(k):].tolist() if tuple(tiles[row].tolist()) in wanted and row not in chosen]
    return np.concatenate([top, np.array(extra, np.int64)]).astype(np.int64), len(extra)


def beam_search(photo: np.ndarray, zooms: tuple[int, ...], embed: Embed, k: int, *,
                start: np.ndarray | None = None, inside: TileFilter | None = None,
                seeds: np.ndarray | None = None) -> SearchResult:
    """Search one photo (a unit embedding [D]) down ``zooms`` keeping the best ``k`` tiles per level.

    ``start``: the first level's tiles (default: the whole world at ``zooms[0]``); ``inside``: a
    filter every level's tiles must pass (region prior); ``seeds``: [S, 2] points whose tiles are
    scored at every level and kept *in addition to* the best ``k`` (so up to k + S tiles are expanded;
    a seed tile outside the region or missing from the source is not added). Ties are broken by tile
    order, so the same inputs always give the same path.
    """
    if int(k) < 1:
        raise SearchError(f"beam width k must be at least 1; got {k}")
    if not zooms:
        raise SearchError("no zoom level to search")
    photo = np.asarray(photo, np.float32).reshape(-1)
    steps: list[LevelStep] = []
    tiles = world_tiles(zooms[0]) if start is None else np.asarray(start, np.int64).reshape(-1, 3)
    for index, zoom in enumerate(zooms):
        if index > 0:
            tiles = expand(steps[-1].kept_tiles(), zoom)
        seeded_here = seed_tiles(seeds, zoom)
        tiles = _add_unique(tiles, seeded_here)  # scored even where the start tiles do not hold them
        if inside is not None and len(tiles):
            tiles = tiles[np.asarray(inside(tiles), dtype=bool)]
        embeddings, available = embed(zoom, tiles)
        tiles, embeddings = tiles[available], embeddings[available]
        if len(tiles) == 0:
            raise SearchError(f"no map tile is available at zoom {zoom} for this search: the tile source lacks "
                              "these tiles (build or fetch them, e.g. `python -m geoapp tiles build-offline "
                              f"--max-zoom {zoom}`), or the region is outside the source's coverage")
        scores = embeddings @ photo
        kept, seeded = _keep(tiles, scores, int(k), seeded_here)
        steps.append(LevelStep(int(zoom), tiles, scores.astype(np.float32), kept, seeded))
    return SearchResult(steps)


def flat_search(photo: np.ndarray, zoom: int, embed: Embed, k: int = 1, tiles: np.ndarray | None = None,
                index: LevelIndex | None = None, inside: TileFilter | None = None) -> SearchResult:
    """Score every tile of one level (the exhaustive baseline the beam search approximates).

    ``index``: a level's cached tile embeddings behind a vector index (``TileEmbedder.level_index``): only
    the top ``k`` tiles are retrieved (exact for small levels, FAISS for large ones) instead of encoding
    and scoring every tile; ``tiles`` / ``inside`` then restrict the search to those tiles."""
    if index is not None:
        return index_search(photo, index, k, tiles=tiles, inside=inside)
    return beam_search(photo, (zoom,), embed, k, start=tiles, inside=inside)


@dataclass
class LevelIndex:
    """One zoom level's tiles [N, 3] with an embedding, and a vector index over them (ids = rows)."""

    zoom: int
    tiles: np.ndarray
    index: object  # geoapp.index.VectorIndex

    def __len__(self) -> int:
        return len(self.tiles)


def index_search(photo: np.ndarray, level: LevelIndex, k: int, *, tiles: np.ndarray | None = None,
                 inside: TileFilter | None = None) -> SearchResult:
    """The best ``k`` tiles of an indexed level for one photo (a unit embedding [D]); ``tiles`` and ``inside``
    restrict the candidates (a region), exactly: the index searches only those rows. The level step holds
    the retrieved tiles only (best first); ties keep tile order, as in :func:`beam_search`."""
    if int(k) < 1:
        raise SearchError(f"beam width k must be at least 1; got {k}")
    subset = None
    if tiles is not None:
        wanted = {tuple(t) for t in np.asarray(tiles, np.int64).reshape(-1, 3).tolist()}
        subset = np.array([row for row, t in enumerate(level.tiles.tolist()) if tuple(t) in wanted], np.int64)
    if inside is not None:
        keep = np.flatnonzero(np.asarray(inside(level.tiles), dtype=bool))
        subset = keep if subset is None else np.intersect1d(subset, keep)
    scores, ids = level.index.search(np.asarray(photo, np.float32).reshape(1, -1), int(k), subset=subset)
    found = ids[0] >= 0
    if not found.any():
        raise SearchError(f"no cached map tile at zoom {level.zoom} matches this search: embed the level first "
                          f"(`python -m geoapp tiles embed --zooms {level.zoom}`) or widen the region")
    kept = ids[0][found]
    return SearchResult([LevelStep(int(level.zoom), level.tiles[kept], scores[0][found].astype(np.float32),
                                   np.arange(len(kept)), 0)])


def tile_boxes(tiles: np.ndarray) -> np.ndarray:
    """[N, 4] (west, south, east, north) of tiles."""
    tiles = np.asarray(tiles, np.int64).reshape(-1, 3)
    return tile_bounds(tiles[:, 0], tiles[:, 1], tiles[:, 2]).reshape(-1, 4)
