"""The dense gallery build: chunked, resumable, float16 normalised parts, IVF-PQ index, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoapp.galleries import dense as dense_gallery
from geoapp.geo import landgrid

SPACING = 500.0  # ~590 land points: a build of a few seconds


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A tiny dense gallery, built in two runs: the first one stops after one part (an interruption)."""
    root = tmp_path_factory.mktemp("galleries")
    kwargs = dict(spacing_km=SPACING, name="tiny", root=root, chunk=200, progress=False, include_mp16=False,
                  nlist=4, log=lambda message: None)
    first = dense_gallery.build_dense(max_parts=1, **kwargs)
    second = dense_gallery.build_dense(**kwargs)
    return root / "tiny", first, second


def test_interrupted_build_resumes(tiny_build):
    folder, first, second = tiny_build
    parts = first.manifest["parts"]
    assert parts >= 3
    assert first.embedded_now == 200 and first.manifest["parts_done"] == [0] and not first.index_built
    # The rerun embedded only what was missing, then consolidated and indexed.
    assert second.embedded_now == first.manifest["points"] - 200
    assert second.index_built and (folder / dense_gallery.INDEX_FILE).is_file()
    third = dense_gallery.build_dense(SPACING, name="tiny", root=folder.parent, chunk=200, progress=False,
                                      include_mp16=False, nlist=4, log=lambda message: None)
    assert third.embedded_now == 0 and not third.index_built  # everything skipped


def test_files_and_manifest(tiny_build):
    folder, _, second = tiny_build
    manifest = json.loads((folder / "manifest.json").read_text())
    coords = np.load(folder / "coords.npy")
    assert coords.dtype == np.float32 and np.array_equal(coords, landgrid.land_grid(SPACING))
    assert manifest["points"] == len(coords) and manifest["spacing_km"] == SPACING
    assert manifest["encoder_id"].startswith("geoclip:") and manifest["parts_done"] == list(range(manifest["parts"]))
    assert {"coords", "embedding", "consolidate", "index_train", "index_add"} <= set(manifest["timings_s"])
    embeddings = np.load(folder / dense_gallery.EMBEDDINGS_FILE, mmap_mode="r")
    assert embeddings.dtype == np.float16 and embeddings.shape == (len(coords), 512)
    assert np.allclose(np.linalg.norm(embeddings.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert not list(folder.glob("emb-*.npy")) and not list(folder.glob("*.tmp"))  # parts folded in, no leftovers
    gallery_json = json.loads((folder / dense_gallery.GALLERY_JSON).read_text())
    assert gallery_json["index"] == dense_gallery.INDEX_FILE and gallery_json["size"] == len(coords)


def test_embeddings_match_the_location_encoder(tiny_build):
    torch = pytest.importorskip("torch")
    from geoapp.models.geoclip import load_location_encoder

    folder, _, _ = tiny_build
    coords = np.load(folder / "coords.npy")[:50]
    encoder, _ = load_location_encoder()
    with torch.inference_mode():
        exact = torch.nn.functional.normalize(encoder(torch.from_numpy(coords)), dim=-1).numpy()
    stored = np.load(folder / dense_gallery.EMBEDDINGS_FILE)[:50].astype(np.float32)
    assert (np.sum(exact * stored, axis=1) > 0.999).all()  # bf16 MLPs + float16 storage vs exact float32


def test_index_finds_each_point_itself(tiny_build):
    from geoapp.index import load_index

    folder, _, _ = tiny_build
    embeddings = np.load(folder / dense_gallery.EMBEDDINGS_FILE, mmap_mode="r")
    index = load_index(folder / dense_gallery.INDEX_FILE, vectors=embeddings)
    assert index.kind == "ivf-pq" and len(index) == len(embeddings)
    queries = np.asarray(embeddings[::40], dtype=np.float32)
    _, ids = index.search(queries, 5, nprobe=4)
    assert (ids[:, 0] == np.arange(0, len(embeddings), 40)).mean() > 0.9


def test_other_settings_refused(tiny_build):
    folder, _, _ = tiny_build
    with pytest.raises(dense_gallery.DenseGalleryError, match="another --name"):
        dense_gallery.build_dense(SPACING, name="tiny", root=folder.parent, chunk=300, progress=False,
                                  include_mp16=False, log=lambda message: None)


def test_missing_weights_fail_before_any_work(tmp_path, monkeypatch):
    from geoapp.models import weights

    def missing(weight, settings=None):
        raise weights.WeightsMissingError(f"Missing weights: {weight.filename}")

    monkeypatch.setattr(weights, "require", missing)
    with pytest.raises(weights.WeightsMissingError, match="location_encoder_weights|image_encoder"):
        dense_gallery.build_dense(SPACING, name="x", root=tmp_path, progress=False, log=lambda m: None)
    assert not (tmp_path / "x").exists()


def test_unbuilt_gallery_names_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    with pytest.raises(dense_gallery.DenseGalleryError, match="python -m geoapp gallery build-dense"):
        dense_gallery.open_dense("dense")
    with pytest.raises(dense_gallery.DenseGalleryError, match="--name mine"):
        dense_gallery.open_dense("dense:mine")


def test_option_names():
    assert dense_gallery.is_dense_option("dense") and dense_gallery.is_dense_option("dense:other")
    assert not dense_gallery.is_dense_option("gallery.csv") and not dense_gallery.is_dense_option(None)
    assert dense_gallery.build_command() == "python -m geoapp gallery build-dense"
    assert dense_gallery.build_command("dense-500km", 500.0) == "python -m geoapp gallery build-dense --spacing-km 500"


def test_predict_through_the_dense_gallery_index(tiny_build, capsys):
    """CLI end to end: --gallery dense:FOLDER loads the prebuilt gallery (nothing embedded) and scores through
    its IVF-PQ index; the record says the probabilities are over the retrieved neighbours."""
    from geoapp.cli.main import main

    from .conftest import shared_path

    folder, _, _ = tiny_build
    photo = shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")
    code = main(["predict", str(photo), "--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu",
                 "--model", "geoclip", "--gallery", f"dense:{folder}", "--top-k", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads(captured.out)
    record = record[0] if isinstance(record, list) else record
    assert record["parameters"]["index"].startswith("ivf-pq")
    assert "retrieved" in record["parameters"]["scoring"]
    assert any("retrieved gallery points" in w for w in record["warnings"])
    assert record["candidates"]


def test_cli_unbuilt_dense_gallery_is_one_clear_line(tmp_path, capsys, monkeypatch):
    from geoapp.cli.main import main

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    code = main(["predict", __file__, "--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu",
                 "--model", "geoclip", "--gallery", "dense"])
    err = capsys.readouterr().err
    assert code != 0 and "gallery build-dense" in err


def test_build_dense_command_line(monkeypatch, tmp_path, capsys):
    from geoapp.cli import main as cli

    seen = {}

    def fake_build(spacing_km, **kwargs):
        seen.update(kwargs, spacing_km=spacing_km)
        manifest = {"name": "n", "points": 10, "land_points": 9, "mp16_points": 1, "spacing_km": spacing_km,
                    "parts_done": [0], "parts": 1, "disk_bytes": {}, "timings_s": {}}
        return dense_gallery.BuildResult(tmp_path, manifest, 10, False)

    monkeypatch.setattr(dense_gallery, "build_dense", fake_build)
    code = cli.main(["gallery", "build-dense", "--spacing-km", "500", "--name", "n", "--chunk", "1000", "--nlist", "8",
                     "--no-index", "--precision", "fp32"])
    assert code == 0 and "10 points" in capsys.readouterr().out
    assert seen == {"spacing_km": 500.0, "name": "n", "device": "cpu", "chunk": 1000, "heads": "pretrained",
                    "build_index": False, "precision": "fp32", "nlist": 8, "log": seen["log"]}


def test_app_flag_refuses_an_unbuilt_dense_gallery(tmp_path, monkeypatch):
    from geoapp.ui.config import ConfigError, config_from_args

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="gallery build-dense"):
        config_from_args(["--gallery", "dense"])
