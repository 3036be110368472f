"""S2 geocells: adaptive partitions of the globe into classes (GeoEstimation / TransLocator).

Classification models (ISNs, TransLocator) predict a *cell* instead of a coordinate. The cells
come from GeoEstimation's adaptive partitioning (Müller-Budack et al., ECCV 2018, §3.1):

1. every training image goes into the S2 cell containing it at a coarse ``start_level`` (2);
2. cells with ``min_count`` images or fewer are dropped (and their images with them);
3. while some cell holds more than ``max_count`` images (and ``max_level`` is not reached),
   each such cell is replaced by its four children one level down;
4. cells with ``min_count`` images or fewer are dropped again.

``min_count`` follows the reference code (``v <= t_min`` is deleted), which is what the shipped
``cells_50_*.csv`` files show: their smallest cell holds 51 images. Each cell records its image
count and the mean of its images' coordinates (the point a prediction of that cell stands for),
averaged on the unit sphere. The reference averages degrees; the two agree to within metres for
small cells, and only ours is right for large ones near a pole. (No S2 cell below level 0
straddles the antimeridian: every level splits along it, so Fiji's photos fall in two cells.)

CSV layout (GeoEstimation's): ``class_label,hex_id,imgs_per_cell,latitude_mean,longitude_mean``,
``hex_id`` being the S2 token. The files in circulation were once opened in a spreadsheet, which
turned tokens that look like numbers into numbers (``478e4`` -> ``4780000``, ``47e64`` ->
``4.7E+064``); :meth:`GeocellPartition.from_csv` repairs those (see :func:`repair_token`).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation, localcontext
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .distance import latlon_to_unit_xyz, validate_latlon
from .s2cells import (MAX_LEVEL, cell_levels, cell_ranges, id_to_token, is_valid_cell_id, latlon_to_leaf_ids,
                      locate_in_cells, parent_ids, token_to_id)

log = logging.getLogger(__name__)

CSV_COLUMNS = ("class_label", "hex_id", "imgs_per_cell", "latitude_mean", "longitude_mean")
DEFAULT_MIN_COUNT = 50
DEFAULT_MAX_COUNTS = (5000, 2000, 1000)  # coarse, middle, fine (GeoEstimation / TransLocator)
DEFAULT_START_LEVEL = 2
PIGEON_TAU_KM = 65.0

_TOKEN_PATTERN = re.compile(r"[0-9a-f]*[1-9a-f]")
_NUMERIC_TOKEN = re.compile(r"[0-9]+(e[0-9]+)?")  # tokens a spreadsheet would take for a number


class GeocellError(ValueError):
    """A geocell file or partition request cannot be used; the message says why."""


# ------------------------------------------------------------------------------ partition
@dataclass
class GeocellPartition:
    """A set of S2 cells used as classes: class ``k`` is ``tokens[k]``.

    ``lat``/``lon`` are the mean coordinates of each cell's training images (degrees) and
    ``counts`` their numbers of images.
    """

    tokens: list[str]
    lat: np.ndarray
    lon: np.ndarray
    counts: np.ndarray
    name: str = "geocells"
    _ids: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tokens = [str(t) for t in self.tokens]
        self.lat = np.asarray(self.lat, dtype=np.float64).reshape(-1)
        self.lon = np.asarray(self.lon, dtype=np.float64).reshape(-1)
        self.counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        n = len(self.tokens)
        if not len(self.lat) == len(self.lon) == len(self.counts) == n:
            raise GeocellError(f"{self.name}: tokens, lat, lon and counts must have the same length "
                               f"(got {n}, {len(self.lat)}, {len(self.lon)}, {len(self.counts)})")
        ids = np.array([token_to_id(t) for t in self.tokens], dtype=np.uint64)
        bad = np.flatnonzero(~is_valid_cell_id(ids))
        if len(bad):
            raise GeocellError(f"{self.name}: {len(bad)} invalid S2 tokens, e.g. {self.tokens[bad[0]]!r}")
        if len(np.unique(ids)) != n:
            raise GeocellError(f"{self.name}: the same S2 cell is listed more than once")
        self._ids = ids

    def __len__(self) -> int:
        return len(self.tokens)

    def cell_ids(self) -> np.ndarray:
        """S2 cell ids (uint64), in class order."""
        return self._ids.copy()

    @property
    def levels(self) -> np.ndarray:
        """S2 level of each cell (0 = cube face ... 30 = leaf)."""
        return cell_levels(self._ids)

    @property
    def coords(self) -> np.ndarray:
        """[N, 2] (lat, lon) of each cell's mean location: what a predicted class stands for."""
        return np.stack([self.lat, self.lon], axis=1)

    def assign(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Class index of the cell containing each point, -1 for points in no cell (int64)."""
        lat, lon = validate_latlon(lat, lon)
        shape = lat.shape
        found = locate_in_cells(latlon_to_leaf_ids(lat.reshape(-1), lon.reshape(-1)), self._ids)
        return found.reshape(shape)

    def polygon(self, index: int) -> list[tuple[float, float]]:
        """The four corners (lat, lon degrees) of cell ``index``, counter-clockwise (for maps)."""
        import s2sphere

        cell = s2sphere.Cell(s2sphere.CellId(int(self._ids[index])))
        corners = [s2sphere.LatLng.from_point(cell.get_vertex(k)) for k in range(4)]
        return [(c.lat().degrees, c.lng().degrees) for c in corners]

    # -------------------------------------------------------------- serialisation
    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> "GeocellPartition":
        """Read GeoEstimation's CSV layout; rows are ordered by ``class_label`` (0 .. N-1)."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise GeocellError(f"cannot read geocell file {path}: {error}") from error
        if not rows or any(column not in rows[0] for column in CSV_COLUMNS):
            found = list(rows[0]) if rows else []
            raise GeocellError(f"{path}: expected the columns {', '.join(CSV_COLUMNS)}; found {found or 'nothing'}")
        try:
            labels = np.array([int(r["class_label"]) for r in rows])
            lat = np.array([float(r["latitude_mean"]) for r in rows])
            lon = np.array([float(r["longitude_mean"]) for r in rows])
            counts = np.array([int(float(r["imgs_per_cell"])) for r in rows])
        except ValueError as error:
            raise GeocellError(f"{path}: a class_label / count / coordinate is not a number ({error})") from error
        if sorted(labels.tolist()) != list(range(len(rows))):
            raise GeocellError(f"{path}: class_label must number the rows 0..{len(rows) - 1} once each")
        try:
            validate_latlon(lat, lon)
        except ValueError as error:
            raise GeocellError(f"{path}: {error}") from error
        raw = [r["hex_id"] for r in rows]
        leaves = latlon_to_leaf_ids(lat, lon)
        trusted = _trusted_tokens(raw, leaves)
        try:
            options = [[raw[k].strip().lower()] if trusted[k] else _candidates_for_leaf(raw[k], leaves[k])
                       for k in range(len(rows))]
        except GeocellError as error:
            raise GeocellError(f"{path}: {error}") from error
        tokens = _settle_ambiguous(options, leaves, str(path))
        repaired = sum(t != r["hex_id"].strip().lower() for t, r in zip(tokens, rows))
        if repaired:
            log.info("%s: repaired %d hex_id values a spreadsheet had turned into numbers", path.name, repaired)
        order = np.argsort(labels)
        return cls([tokens[i] for i in order], lat[order], lon[order], counts[order], name or path.stem)

    def to_csv(self, path: str | Path) -> Path:
        """Write GeoEstimation's layout (``class_label`` = row index)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for k, (token, count, la, lo) in enumerate(zip(self.tokens, self.counts, self.lat, self.lon)):
                writer.writerow([k, token, int(count), repr(float(la)), repr(float(lo))])
        return path

    def to_dict(self) -> dict:
        """Plain lists (JSON- and ``torch.load(weights_only=True)``-safe), e.g. for checkpoints."""
        return {"name": self.name, "tokens": list(self.tokens), "lat": self.lat.tolist(), "lon": self.lon.tolist(),
                "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "GeocellPartition":
        return cls(data["tokens"], data["lat"], data["lon"], data["counts"], data.get("name", "geocells"))


def repair_token(raw: str, lat: float, lon: float) -> str:
    """An S2 token from a ``hex_id`` cell, undoing spreadsheet number formatting (one row alone).

    Raises :class:`GeocellError` when the row alone leaves more than one possibility;
    :meth:`GeocellPartition.from_csv` settles those with the other rows of the file.
    """
    options = token_candidates(raw, lat, lon)
    if len(options) != 1:
        raise GeocellError(f"hex_id {raw!r} could be any of {options} (the cells of the file decide)")
    return options[0]


def token_candidates(raw: str, lat: float, lon: float) -> list[str]:
    """The S2 tokens a ``hex_id`` cell may stand for (usually exactly one).

    The files in circulation went through a spreadsheet that read tokens as numbers: leading
    zeros vanished (``071`` -> ``71``, a valid token of another face), ``478e4`` became
    ``4780000`` or ``4.78E+006``, ``0e37`` became ``0``. A token is trusted when its cell
    contains the row's mean coordinate. Otherwise the answer is among the cells containing
    that coordinate (its 31 ancestors, one per level) whose token a spreadsheet would read as
    the same number; all of those are returned (``3460000``: ``346e4`` or its child ``346e04``).
    """
    leaf = latlon_to_leaf_ids(np.array([lat]), np.array([lon]))
    return [raw.strip().lower()] if _trusted_tokens([raw], leaf)[0] else _candidates_for_leaf(raw, leaf[0])


def _trusted_tokens(raw: list[str], leaves: np.ndarray) -> np.ndarray:
    """Which rows hold a well-formed, valid token whose cell contains the row's mean coordinate."""
    texts = [t.strip().lower() for t in raw]
    formed = np.array([bool(_TOKEN_PATTERN.fullmatch(t)) and len(t) <= 16 for t in texts])
    ids = np.array([token_to_id(t) if ok else 0 for t, ok in zip(texts, formed)], dtype=np.uint64)
    low, high = cell_ranges(ids)
    return formed & is_valid_cell_id(ids) & (low <= leaves) & (leaves <= high)


def _candidates_for_leaf(raw: str, leaf: np.uint64) -> list[str]:
    text = raw.strip().lower()
    value = _as_number(raw)
    matches = []
    if value is not None:
        # Half a unit of the last digit shown: "4.867E+088" may be a rounded display.
        tolerance = Decimal(5).scaleb(value.as_tuple().exponent - 1)
        ancestors = parent_ids(np.full(MAX_LEVEL + 1, leaf, dtype=np.uint64), np.arange(MAX_LEVEL + 1))
        for ancestor in ancestors:
            token = id_to_token(ancestor)
            number = _as_number(token) if _NUMERIC_TOKEN.fullmatch(token) else None
            if number is not None and _close(number, value, tolerance):
                matches.append(token)
    if matches:
        return matches
    if _TOKEN_PATTERN.fullmatch(text) and len(text) <= 16 and is_valid_cell_id([token_to_id(text)])[0]:
        return [text]  # a genuine token whose (degree-averaged) mean falls outside it, e.g. at ±180°
    raise GeocellError(f"hex_id {raw!r} is not an S2 token of a cell containing its mean coordinate, "
                       "nor a number such a token could have become")


def _close(a: Decimal, b: Decimal, tolerance: Decimal) -> bool:
    # Tokens such as "3e14444444444444" are astronomically large numbers: widen the context.
    with localcontext(Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN)):
        return abs(a - b) <= tolerance


def _as_number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _settle_ambiguous(options: list[list[str]], mean_leaves: np.ndarray, where: str) -> list[str]:
    """Pick one token for rows with several candidates (nested cells around the mean coordinate).

    Two facts of the partitioning decide: the cells of a file are disjoint (a candidate that
    overlaps a cell another row names is impossible), and a cell exists because its parent was
    split for holding too many images, so the parent holds other rows' images too. A candidate
    deeper than the true cell has its parent inside the true cell, where no other row lies; so
    the answer is the deepest candidate whose parent holds another row's mean coordinate.
    """
    settled: list[str | None] = [o[0] if len(o) == 1 else None for o in options]
    leaf_order = np.argsort(mean_leaves)
    sorted_leaves = mean_leaves[leaf_order]
    for row in (r for r, o in enumerate(options) if len(o) > 1):
        known = [k for k, t in enumerate(settled) if t is not None]
        low, high = cell_ranges(np.sort(np.array([token_to_id(settled[k]) for k in known], dtype=np.uint64)))

        def overlaps_known(cell: np.ndarray) -> bool:
            c_low, c_high = cell_ranges(cell)
            k = np.searchsorted(low, c_high[0], side="right") - 1  # last known cell starting inside/before
            return k >= 0 and high[k] >= c_low[0]

        def other_rows_inside(cell: np.ndarray) -> int:
            c_low, c_high = cell_ranges(cell)
            return int(np.searchsorted(sorted_leaves, c_high[0], side="right")
                       - np.searchsorted(sorted_leaves, c_low[0], side="left")) - 1

        free = [t for t in options[row] if not overlaps_known(np.array([token_to_id(t)], dtype=np.uint64))]
        if not free:
            raise GeocellError(f"{where}: row {row}: hex_id could be any of {options[row]}, "
                               "but each overlaps another cell of the file")
        crowded = []
        for token in free:
            cell_id = np.array([token_to_id(token)], dtype=np.uint64)
            level = int(cell_levels(cell_id)[0])
            if level > 0 and other_rows_inside(parent_ids(cell_id, level - 1)) > 0:
                crowded.append(token)
        pick = max(crowded or free, key=lambda t: int(cell_levels([token_to_id(t)])[0]))
        if not crowded:
            log.warning("%s: row %d: hex_id could be any of %s; took %s", where, row, free, pick)
        settled[row] = pick
    return settled  # type: ignore[return-value]


# ------------------------------------------------------------------------------ partitioning
def partition(lat: ArrayLike, lon: ArrayLike, min_count: int = DEFAULT_MIN_COUNT, max_count: int = 5000,
              start_level: int = DEFAULT_START_LEVEL, max_level: int = MAX_LEVEL,
              name: str | None = None) -> GeocellPartition:
    """GeoEstimation's adaptive S2 partitioning of the points (see the module docstring).

    Classes are ordered by S2 cell id (the Hilbert curve: neighbouring classes are usually
    neighbouring places), so the result does not depend on the order of the points.
    """
    lat, lon = validate_latlon(lat, lon)
    lat, lon = lat.reshape(-1), lon.reshape(-1)
    if not 0 <= start_level <= max_level <= MAX_LEVEL:
        raise GeocellError(f"need 0 <= start_level ({start_level}) <= max_level ({max_level}) <= {MAX_LEVEL}")
    if min_count < 0 or max_count <= min_count:
        raise GeocellError(f"need 0 <= min_count ({min_count}) < max_count ({max_count})")
    leaves = latlon_to_leaf_ids(lat, lon)
    cells = parent_ids(leaves, start_level)
    keep = _drop_small(cells, min_count)
    leaves, cells, lat, lon = leaves[keep], cells[keep], lat[keep], lon[keep]
    level = start_level
    while len(cells) and level < max_level:
        unique, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
        crowded = counts[inverse] > max_count
        if not crowded.any():
            break
        level += 1
        cells[crowded] = parent_ids(leaves[crowded], level)
    keep = _drop_small(cells, min_count)
    cells, lat, lon = cells[keep], lat[keep], lon[keep]
    unique, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    mean_lat, mean_lon = _spherical_means(lat, lon, inverse, len(unique))
    label = name or f"cells_{min_count}_{max_count}"
    return GeocellPartition([id_to_token(c) for c in unique], mean_lat, mean_lon, counts, label)


def _drop_small(cells: np.ndarray, min_count: int) -> np.ndarray:
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return counts[inverse] > min_count


def _spherical_means(lat: np.ndarray, lon: np.ndarray, group: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean direction of unit vectors -> (lat, lon) degrees."""
    xyz = latlon_to_unit_xyz(lat, lon)
    sums = np.stack([np.bincount(group, weights=xyz[:, k], minlength=groups) for k in range(3)], axis=1)
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    unit = sums / np.where(norm > 0, norm, 1.0)
    mean_lat = np.degrees(np.arcsin(np.clip(unit[:, 2], -1.0, 1.0)))
    mean_lon = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
    return mean_lat, mean_lon


def parent_index(fine: GeocellPartition, coarse: GeocellPartition) -> np.ndarray:
    """For each cell of ``fine``, the index of the ``coarse`` cell equal to or containing it (-1: none)."""
    return locate_in_cells(fine.cell_ids(), coarse.cell_ids())


# ------------------------------------------------------------------------------ hierarchy
@dataclass
class GeocellHierarchy:
    """The three partitions a TransLocator/ISN head predicts, with the fine -> coarser maps."""

    coarse: GeocellPartition
    middle: GeocellPartition
    fine: GeocellPartition
    fine_to_middle: np.ndarray
    fine_to_coarse: np.ndarray

    @classmethod
    def from_partitions(cls, coarse: GeocellPartition, middle: GeocellPartition,
                        fine: GeocellPartition) -> "GeocellHierarchy":
        return cls(coarse, middle, fine, parent_index(fine, middle), parent_index(fine, coarse))

    @classmethod
    def from_folder(cls, folder: str | Path, min_count: int = DEFAULT_MIN_COUNT,
                    max_counts: tuple[int, int, int] = DEFAULT_MAX_COUNTS) -> "GeocellHierarchy":
        """``folder/cells_{min}_{max}.csv`` for the three maxima (the layout ``training.partition`` writes)."""
        folder = Path(folder)
        paths = [folder / f"cells_{min_count}_{m}.csv" for m in max_counts]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise GeocellError(f"geocell files missing: {', '.join(missing)}; create them with "
                               f"`python -m training.partition --csv DATASET.csv --out {folder}`")
        return cls.from_partitions(*(GeocellPartition.from_csv(p) for p in paths))

    @classmethod
    def build(cls, lat: ArrayLike, lon: ArrayLike, min_count: int = DEFAULT_MIN_COUNT,
              max_counts: tuple[int, int, int] = DEFAULT_MAX_COUNTS, start_level: int = DEFAULT_START_LEVEL,
              max_level: int = MAX_LEVEL) -> "GeocellHierarchy":
        """Partition the same points three times (coarse, middle, fine maxima)."""
        if not max_counts[0] >= max_counts[1] >= max_counts[2]:
            raise GeocellError(f"max_counts must go from coarse to fine (decreasing), got {max_counts}")
        parts = [partition(lat, lon, min_count, m, start_level, max_level) for m in max_counts]
        return cls.from_partitions(*parts)

    @property
    def levels(self) -> tuple[GeocellPartition, GeocellPartition, GeocellPartition]:
        return self.coarse, self.middle, self.fine

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.coarse), len(self.middle), len(self.fine)

    def assign(self, lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coarse, middle, fine) class of each point; -1 where a partition has no cell there."""
        lat, lon = validate_latlon(lat, lon)
        leaves = latlon_to_leaf_ids(lat.reshape(-1), lon.reshape(-1))
        return tuple(locate_in_cells(leaves, p.cell_ids()).reshape(lat.shape) for p in self.levels)  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return {"coarse": self.coarse.to_dict(), "middle": self.middle.to_dict(), "fine": self.fine.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "GeocellHierarchy":
        return cls.from_partitions(*(GeocellPartition.from_dict(data[k]) for k in ("coarse", "middle", "fine")))


# ------------------------------------------------------------------------------ soft labels
def haversine_soft_targets(true_lat: ArrayLike, true_lon: ArrayLike, cells: GeocellPartition,
                           tau_km: float = PIGEON_TAU_KM) -> np.ndarray:
    """PIGEON's haversine label smoothing: target_k ∝ exp(-(d(x, c_k) - d(x, c_true)) / τ).

    ``c_k`` are the cells' mean coordinates and ``x`` the true location; normalised to sum to
    1 per row (the ``d(x, c_true)`` term is then a constant, so this is a softmax of -d/τ).
    Returns float32 [B, len(cells)]. Distances use the great circle on the unit sphere.
    """
    if not tau_km > 0 or not math.isfinite(tau_km):
        raise GeocellError(f"tau_km must be a positive number, got {tau_km}")
    lat, lon = validate_latlon(true_lat, true_lon)
    points = latlon_to_unit_xyz(lat.reshape(-1), lon.reshape(-1))
    centres = latlon_to_unit_xyz(cells.lat, cells.lon)
    from .distance import EARTH_RADIUS_KM

    cos = np.clip(points @ centres.T, -1.0, 1.0)
    distance = np.arccos(cos) * EARTH_RADIUS_KM
    logits = -(distance - distance.min(axis=1, keepdims=True)) / tau_km
    weights = np.exp(logits)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
