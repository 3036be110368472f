"""Vectorised S2 cell ids (numpy): lat/lon -> leaf cell, parents, levels, tokens.

The S2 library (and its pure-Python port ``s2sphere``) converts one point at a time, which
takes seconds for 100K points. The maths is simple enough to run on whole arrays:

1. lat/lon -> unit vector -> cube face (largest absolute component) and (u, v) on that face;
2. the quadratic (u, v) -> (s, t) transform S2 uses, then 30-bit integer (i, j);
3. (i, j) -> position along the face's Hilbert curve, two bits per level, following S2's
   orientation tables;
4. id = face << 61 | position << 1 | 1 (a leaf cell, level 30).

A cell at level L keeps the top 3 + 2L bits and marks the end with a single 1 bit
(``lsb``); its parent at level K < L is ``(id & ~(lsb_K - 1)) | lsb_K``. Results match
``s2sphere`` (checked in ``tests/geo/test_geocells.py``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MAX_LEVEL = 30
_POS_BITS = 2 * MAX_LEVEL + 1  # 61: the face sits above these
_MAX_SIZE = 1 << MAX_LEVEL
_VALID_LSB_MASK = np.uint64(0x1555555555555555)  # the end marker sits on an even bit

# S2's Hilbert-curve tables: position of sub-cell (i_bit, j_bit) for each orientation
# (bit 0 = axes swapped, bit 1 = direction inverted), and how the orientation changes.
_IJ_TO_POS = np.array([[0, 1, 3, 2], [0, 3, 1, 2], [2, 3, 1, 0], [2, 1, 3, 0]], dtype=np.uint64)
_POS_TO_ORIENTATION_CHANGE = np.array([1, 0, 0, 3], dtype=np.int64)


def lsb_for_level(level: ArrayLike) -> np.ndarray:
    """The end-marker bit of cells at ``level`` (uint64)."""
    shift = 2 * (MAX_LEVEL - np.asarray(level, dtype=np.int64))
    return np.left_shift(np.uint64(1), shift.astype(np.uint64))


def _uv_to_st(u: np.ndarray) -> np.ndarray:
    """S2's quadratic projection (areas of cells at one level vary by < 2.1x over the sphere)."""
    return np.where(u >= 0, 0.5 * np.sqrt(1.0 + 3.0 * np.abs(u)), 1.0 - 0.5 * np.sqrt(1.0 + 3.0 * np.abs(u)))


def latlon_to_leaf_ids(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Leaf (level-30) S2 cell ids of points given in degrees -> uint64 array (same shape).

    Inputs must be finite; callers validate ranges (``geoapp.geo.distance.validate_latlon``).
    """
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi, lam = np.broadcast_arrays(phi, lam)
    shape = phi.shape
    phi, lam = phi.reshape(-1), lam.reshape(-1)
    cos_phi = np.cos(phi)
    xyz = np.stack([np.cos(lam) * cos_phi, np.sin(lam) * cos_phi, np.sin(phi)], axis=1)

    # Face: the axis of the largest |component| (ties resolved as S2 does), +3 when negative.
    ax, ay, az = np.abs(xyz).T
    axis = np.where(ax > ay, np.where(ax > az, 0, 2), np.where(ay > az, 1, 2))
    negative = xyz[np.arange(len(axis)), axis] < 0
    face = axis + 3 * negative
    x, y, z = xyz.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.select([face == 0, face == 1, face == 2, face == 3, face == 4],
                      [y / x, -x / y, -x / z, z / x, z / y], -y / z)
        v = np.select([face == 0, face == 1, face == 2, face == 3, face == 4],
                      [z / x, z / y, -y / z, y / x, -x / y], -x / z)
    i = np.clip(np.floor(_MAX_SIZE * _uv_to_st(u)), 0, _MAX_SIZE - 1).astype(np.int64)
    j = np.clip(np.floor(_MAX_SIZE * _uv_to_st(v)), 0, _MAX_SIZE - 1).astype(np.int64)

    # Walk down the Hilbert curve one level (one bit of i and j) at a time.
    orientation = face & 1
    position = np.zeros(len(face), dtype=np.uint64)
    for bit in range(MAX_LEVEL - 1, -1, -1):
        quadrant = (((i >> bit) & 1) << 1) | ((j >> bit) & 1)
        step = _IJ_TO_POS[orientation, quadrant]
        position = (position << np.uint64(2)) | step
        orientation = orientation ^ _POS_TO_ORIENTATION_CHANGE[step.astype(np.int64)]
    ids = (face.astype(np.uint64) << np.uint64(_POS_BITS)) | (position << np.uint64(1)) | np.uint64(1)
    return ids.reshape(shape)


def lowest_set_bit(ids: ArrayLike) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.uint64)
    return ids & (np.uint64(0) - ids)  # two's complement: x & -x


def cell_levels(ids: ArrayLike) -> np.ndarray:
    """Level (0 = face ... 30 = leaf) of each valid cell id -> int64 array."""
    lsb = lowest_set_bit(ids)
    # lsb is a power of two <= 2**60: exact in float64.
    with np.errstate(divide="ignore"):
        bit = np.log2(np.maximum(lsb, np.uint64(1)).astype(np.float64)).astype(np.int64)
    return MAX_LEVEL - bit // 2


def parent_ids(ids: ArrayLike, level: int | ArrayLike) -> np.ndarray:
    """Ancestor at ``level`` of each cell (which must be at ``level`` or finer)."""
    ids = np.asarray(ids, dtype=np.uint64)
    lsb = lsb_for_level(level)
    return (ids & ~(lsb - np.uint64(1))) | lsb


def cell_ranges(ids: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(range_min, range_max): the first and last leaf id inside each cell."""
    ids = np.asarray(ids, dtype=np.uint64)
    half = lowest_set_bit(ids) - np.uint64(1)
    return ids - half, ids + half


def is_valid_cell_id(ids: ArrayLike) -> np.ndarray:
    """Face 0-5 and an end-marker bit on an even position (what ``S2CellId::is_valid`` checks)."""
    ids = np.asarray(ids, dtype=np.uint64)
    face_ok = (ids >> np.uint64(_POS_BITS)) < np.uint64(6)
    return face_ok & ((lowest_set_bit(ids) & _VALID_LSB_MASK) != np.uint64(0))


def id_to_token(cell_id: int | np.integer) -> str:
    """Hex id without its trailing zeros (S2's token); ``"X"`` for the invalid id 0."""
    value = int(cell_id)
    return format(value, "016x").rstrip("0") or "X"


def token_to_id(token: str) -> int:
    """Inverse of :func:`id_to_token` (no validity check: see :func:`is_valid_cell_id`)."""
    text = token.strip().lower()
    if not 0 < len(text) <= 16 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{token!r} is not an S2 cell token (1-16 hex digits)")
    return int(text.ljust(16, "0"), 16)


def locate_in_cells(query_ids: np.ndarray, cell_ids: np.ndarray) -> np.ndarray:
    """Index into ``cell_ids`` of the finest cell containing each query cell (or leaf), -1 if none.

    Works per level present in ``cell_ids`` (at most 31 sorted look-ups), so it is exact even
    when the cells overlap, and fast for any number of queries.
    """
    query_ids = np.asarray(query_ids, dtype=np.uint64).reshape(-1)
    cell_ids = np.asarray(cell_ids, dtype=np.uint64).reshape(-1)
    result = np.full(len(query_ids), -1, dtype=np.int64)
    if len(cell_ids) == 0 or len(query_ids) == 0:
        return result
    query_levels = cell_levels(query_ids)
    levels = cell_levels(cell_ids)
    for level in np.unique(levels):  # ascending: finer levels overwrite coarser matches
        members = np.flatnonzero(levels == level)
        order = np.argsort(cell_ids[members])
        sorted_ids = cell_ids[members][order]
        applicable = np.flatnonzero(query_levels >= level)
        if len(applicable) == 0:
            continue
        ancestors = parent_ids(query_ids[applicable], int(level))
        slot = np.minimum(np.searchsorted(sorted_ids, ancestors), len(sorted_ids) - 1)
        hit = sorted_ids[slot] == ancestors
        result[applicable[hit]] = members[order[slot[hit]]]
    return result
