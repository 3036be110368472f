"""Gallery ceiling: nearest gallery point on the sphere, known answers and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.geo.distance import haversine_km, pairwise_haversine_km

from training.gallery_ceiling import NearestGallery, ceiling_row, main, unit_vectors

from ..conftest import shared_path

DEG_KM = haversine_km(0, 0, 0, 1)  # one degree of a great circle, ~111.19 km


def test_known_answers():
    gallery = np.array([[0.0, 0.0], [0.0, 90.0], [45.0, 0.0], [0.0, -179.9], [89.0, 0.0]])
    nearest = NearestGallery(gallery)
    queries = np.array([
        [0.0, 0.0],      # on a gallery point
        [0.0, 1.0],      # 1 degree east of (0, 0)
        [0.0, 179.9],    # across the antimeridian from (0, -179.9): 0.2 degrees
        [89.0, 180.0],   # across the pole from (89, 0): 2 degrees
        [20.0, 0.0],     # between (0, 0) and (45, 0): 20 degrees from the first
        [0.0, 60.0],     # 30 degrees from (0, 90)
    ])
    distances, index = nearest.query(queries)
    np.testing.assert_allclose(distances, np.array([0, 1, 0.2, 2, 20, 30]) * DEG_KM, rtol=1e-6, atol=1e-6)
    assert index.tolist() == [0, 0, 3, 4, 0, 1]

    row = ceiling_row("toy", queries, nearest, "toy-gallery")
    assert row.n == 6
    assert row.accuracy == {1.0: pytest.approx(100 / 6), 25.0: pytest.approx(200 / 6), 200.0: pytest.approx(300 / 6),
                            750.0: pytest.approx(400 / 6), 2500.0: pytest.approx(500 / 6), }
    assert row.median_km == pytest.approx(np.median([0, 1, 0.2, 2, 20, 30]) * DEG_KM)


def test_unit_vectors_are_on_the_sphere():
    v = unit_vectors(np.array([[90.0, 0.0], [0.0, 90.0], [-30.0, -120.0]]))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    np.testing.assert_allclose(v[0], [0, 0, 1], atol=1e-12)


def test_matches_brute_force_haversine():
    rng = np.random.default_rng(0)
    gallery = np.stack([np.degrees(np.arcsin(rng.uniform(-1, 1, 3000))), rng.uniform(-180, 180, 3000)], axis=1)
    queries = np.stack([rng.uniform(-90, 90, 500), rng.uniform(-180, 180, 500)], axis=1)
    distances, index = NearestGallery(gallery).query(queries)
    brute = pairwise_haversine_km(queries, gallery)
    np.testing.assert_allclose(distances, brute.min(axis=1), rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(brute[np.arange(500), index], brute.min(axis=1), rtol=1e-9, atol=1e-9)


def test_cli_on_a_benchmark_csv(tmp_path, capsys):
    csv = shared_path("benchmarks", "im2gps_places365.csv")
    gallery = tmp_path / "gallery.csv"
    gallery.write_text("lat,lon\n0,0\n45,0\n")
    assert main(["--csv", str(csv), "--gallery", str(gallery), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "gallery ceiling (gallery, 2 points)" in out and "| im2gps_places365 | 237 |" in out
    assert (tmp_path / "out" / "ceiling.md").is_file() and (tmp_path / "out" / "ceiling.csv").is_file()


def test_refinement_ceiling_is_never_lower_and_reaches_the_lattice():
    from geoapp.geo.refine import RefineSpec, offset_points

    from training.gallery_ceiling import refined_distances

    rng = np.random.default_rng(3)
    gallery = np.stack([rng.uniform(-50, 50, 400), rng.uniform(-170, 170, 400)], axis=1)
    nearest = NearestGallery(gallery)
    # truths 0-14 km from a gallery point (inside a 15 km refinement) and some far from all
    near = np.array([offset_points(g[0], g[1], [[rng.uniform(-10, 10), rng.uniform(-10, 10)]])[0] for g in gallery[:50]])
    far = np.stack([rng.uniform(-50, 50, 50), rng.uniform(-170, 170, 50)], axis=1)
    truths = np.concatenate([near, far])
    spec = RefineSpec(radius_km=15, step_km=0.5)
    plain, _ = nearest.query(truths)
    refined = refined_distances(truths, nearest, spec)
    assert np.all(refined <= plain + 1e-9)
    assert refined[:50].max() <= 0.5 / np.sqrt(2) + 0.01
    plain_row = ceiling_row("toy", truths, nearest, "toy")
    refined_row = ceiling_row("toy", truths, nearest, "toy", spec)
    assert "refinement 15 km at 0.5 km" in refined_row.method
    assert all(refined_row.accuracy[t] >= plain_row.accuracy[t] for t in plain_row.accuracy)
    assert refined_row.accuracy[1.0] >= 50.0


def test_gallery_option_dense_npy_and_folder(tmp_path):
    from training.gallery_ceiling import load_gallery_coords

    from geoapp.geo.landgrid import land_grid

    dense = load_gallery_coords("dense:800")  # the land grid at 800 km + the MP-16 100K, no embeddings needed
    grid = land_grid(800.0)
    assert len(dense) == len(grid) + 100_000 and np.array_equal(dense.coords[:len(grid)], grid)
    np.save(tmp_path / "coords.npy", grid)
    assert np.array_equal(load_gallery_coords(str(tmp_path / "coords.npy")).coords, grid)
    assert np.array_equal(load_gallery_coords(str(tmp_path)).coords, grid)  # a built gallery folder
    np.save(tmp_path / "bad.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        load_gallery_coords(str(tmp_path / "bad.npy"))
