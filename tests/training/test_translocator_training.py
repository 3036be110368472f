"""TransLocator training: paired augmentation, data, schedule, accumulation, CLI runs (resume, DDP,
on-the-fly segmentation), evaluation, partition CLI, and the SatWorld run that must beat its baseline."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from geoapp.geo.geocells import GeocellHierarchy
from geoapp.families.translocator.ade20k import ADE20K_PALETTE
from geoapp.families.translocator.network import TransLocatorConfig, build_translocator, load_translocator_checkpoint
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

from training.data import DatasetSpec, read_records
from training.translocator.augment import (SEG_VOID, PairedAugmentation, centre_crop_views, sample_generator,
                                           ten_crop_views, training_views)
from training.translocator.data import (TransLocatorImageDataset, collate_translocator, colourise_maps,
                                        label_records, to_model_batch)
from training.translocator.engine import STATE_NAME, OptimConfig, TransLocatorTrainer
from training.distributed import DistEnv

from .conftest import CORRUPT_NAME, MISSING_NAME, make_image_folder

REPO = Path(__file__).resolve().parents[2]
CELL_ARGS = ["--cells-min", "1", "--cells-max", "20", "10", "5"]


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def photo_set(tmp_path_factory, dev_dir, dev_truth) -> dict:
    """40 dev photos (+ a corrupt and a missing one), PNG class maps, geocells of their coordinates."""
    from training.partition import write_partitions

    root = tmp_path_factory.mktemp("tl-photos")
    csv = make_image_folder(root, dev_dir, dev_truth, 40)
    frame = pd.read_csv(csv, dtype=str)
    # The corrupt and the missing photo sit where real photos are, so they fall in a geocell and
    # reach the loader (which must skip and count them).
    frame.loc[frame["IMG_ID"].isin([CORRUPT_NAME, MISSING_NAME]), ["LAT", "LON"]] = frame.loc[0, ["LAT", "LON"]].values
    frame.to_csv(csv, index=False)
    seg = root / "seg"
    seg.mkdir()
    rng = np.random.default_rng(0)
    for k, name in enumerate(dev_truth["IMG_ID"].head(40)):
        with Image.open(dev_dir / name) as image:
            width, height = image.size
        ids = rng.integers(0, 150, (max(8, height // 16), max(8, width // 16)), dtype=np.uint8)
        target = seg / Path(name).with_suffix(".png")
        # Half as class-id PNGs, half as ADE20K-palette colour PNGs (the authors' format).
        Image.fromarray(ids if k % 2 else ADE20K_PALETTE[ids]).save(target)
    records = read_records(DatasetSpec(csv, root / "images"))
    write_partitions(records.coords[:, 0], records.coords[:, 1], root / "cells", 1, (20, 10, 5))
    return {"root": root, "csv": csv, "images": root / "images", "seg": seg, "cells": root / "cells"}


def _run_cli(args: list[str], timeout: int = 240, torchrun: int = 0) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun), "--standalone"]
                if torchrun else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([*launcher, "-m", "training.translocator.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _train_args(photo_set: dict, out: Path, *extra: str) -> list[str]:
    return ["--csv", str(photo_set["csv"]), "--images", str(photo_set["images"]), "--cells", str(photo_set["cells"]),
            *CELL_ARGS, "--model", "tiny", "--out", str(out), "--batch-size", "8", "--micro-batch", "4",
            "--warmup-steps", "2", "--workers", "0", "--log-every", "1", "--device", "cpu", *extra]


# ---------------------------------------------------------------------------------- augmentation
def _striped_photo() -> tuple[torch.Tensor, torch.Tensor]:
    """A photo whose red channel encodes the class of wide stripes, and that class map."""
    classes = (torch.arange(320) // 40).repeat(240, 1).to(torch.uint8) * 10 + 5  # [240, 320], 8 stripes
    rgb = torch.stack([classes * 3, torch.full_like(classes, 128), torch.full_like(classes, 60)])
    return rgb, classes


def test_paired_views_share_geometry() -> None:
    rgb, classes = _striped_photo()
    aug = PairedAugmentation.for_crop(64, jitter_p=0.0)
    for seed in range(6):
        jittered, plain, seg = training_views(rgb, classes, aug, torch.Generator().manual_seed(seed))
        assert jittered.shape == (3, 64, 64) and seg.shape == (64, 64) and seg.dtype == torch.uint8
        assert torch.equal(jittered, plain)  # jitter_p = 0
        inside = seg != SEG_VOID
        decoded = (plain[0].float() / 3).round()
        # Same geometry: away from stripe edges (bilinear blends there) the photo says the map's class.
        agree = ((decoded - seg.float()).abs() <= 1)[inside].float().mean()
        assert agree > 0.85
        # ... and clearly better than with the map moved by three pixels (misaligned geometry).
        shifted = ((decoded[:, 3:] - seg[:, :-3].float()).abs() <= 1)[inside[:, 3:] & inside[:, :-3]].float().mean()
        assert agree > shifted + 0.1
        # Rotated-in corners are black in the photo exactly where the map is void.
        if (~inside).any():
            assert plain[:, ~inside].float().mean() < 40


def test_views_are_seeded_and_jitter_only_rgb() -> None:
    rgb, classes = _striped_photo()
    aug = PairedAugmentation.for_crop(48, jitter_p=1.0)
    first = training_views(rgb, classes, aug, sample_generator(0, 1, 5))
    again = training_views(rgb, classes, aug, sample_generator(0, 1, 5))
    other = training_views(rgb, classes, aug, sample_generator(0, 2, 5))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    jittered, plain, seg = first
    assert not torch.equal(jittered, plain)  # colour changed on the photo only
    assert set(seg.unique().tolist()) <= set(classes.unique().tolist()) | {SEG_VOID}


def test_evaluation_views() -> None:
    rgb, classes = _striped_photo()
    crops, maps = ten_crop_views(rgb, classes, 64)
    assert crops.shape == (10, 3, 64, 64) and maps.shape == (10, 64, 64)
    assert torch.equal(crops[5], torch.flip(crops[1], dims=[-1]))  # the flipped image's top-left = mirrored top-right
    centre, centre_map = centre_crop_views(rgb, classes, 64)
    assert torch.equal(centre[0], crops[4]) and torch.equal(centre_map[0], maps[4])
    colours = colourise_maps(torch.tensor([[[4, SEG_VOID]]], dtype=torch.uint8))
    assert colours[0, :, 0, 0].tolist() == list(ADE20K_PALETTE[4]) and colours[0, :, 0, 1].tolist() == [0, 0, 0]


# ---------------------------------------------------------------------------------- schedule
def test_learning_rate_schedule() -> None:
    optim = OptimConfig()
    per_epoch = 1000
    assert optim.lr_factor(0, per_epoch) == pytest.approx(1 / 2000)
    assert optim.lr_factor(999, per_epoch) == pytest.approx(0.5)
    assert optim.lr_factor(1999, per_epoch) == 1.0
    assert optim.lr_factor(5 * per_epoch, per_epoch) == 0.5  # milestone 5
    assert optim.lr_factor(10 * per_epoch, per_epoch) == 0.25
    assert optim.lr_factor(39 * per_epoch, per_epoch) == 0.5 ** 5
    assert optim.accumulation(world=4) == 4  # 512 = 32 x 4 ranks x 4
    with pytest.raises(ValueError, match="multiple"):
        OptimConfig(batch_size=100, micro_batch=32).accumulation(1)


def test_gradient_accumulation_equals_one_big_batch(tmp_path) -> None:
    config = TransLocatorConfig.tiny(cell_counts=(3, 4, 5), scene_counts=(3,))
    cells = GeocellHierarchy.build(np.repeat([10.0, 40.0, -30.0], 10), np.repeat([20.0, -70.0, 140.0], 10),
                                   min_count=1, max_counts=(30, 30, 30))
    config = replace(config, cell_counts=cells.sizes)
    generator = torch.Generator().manual_seed(0)
    rgb, seg = torch.randn(8, 3, 32, 32, generator=generator), torch.randn(8, 3, 32, 32, generator=generator)
    labels = torch.stack([torch.randint(0, n, (8,), generator=generator) for n in cells.sizes], dim=1)
    scenes = torch.randint(0, 3, (8,), generator=generator)  # every row labelled: equal-weight micro-batches

    def batch(rows: slice):
        from training.translocator.loss import TransLocatorTargets
        from training.translocator.data import ModelBatch

        return ModelBatch(rgb[rows], seg[rows], TransLocatorTargets(tuple(labels[rows].unbind(1)), (scenes[rows],)),
                          len(range(8)[rows]))

    results = []
    for micro, groups in ((8, [slice(0, 8)]), (4, [slice(0, 4), slice(4, 8)])):
        torch.manual_seed(1)
        model = build_translocator(config, "random")
        trainer = TransLocatorTrainer(model, cells, OptimConfig(batch_size=8, micro_batch=micro, warmup_steps=0),
                                      torch.device("cpu"), DistEnv(), tmp_path / f"m{micro}", steps_per_epoch=10)
        trainer.optimiser_step([batch(g) for g in groups])
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    # Same labelled rows per micro-batch here, so the mean of the means is the full-batch mean.
    assert torch.allclose(results[0], results[1], atol=1e-5)


# ---------------------------------------------------------------------------------- data
def test_dataset_reads_maps_labels_and_counts_failures(photo_set: dict) -> None:
    records = read_records(DatasetSpec(photo_set["csv"], photo_set["images"]))
    cells = GeocellHierarchy.from_folder(photo_set["cells"], 1, (20, 10, 5))
    data = label_records(records, cells)
    assert len(data) + data.dropped_outside_cells == len(records)
    assert (data.cells >= 0).any(axis=1).all()
    assert set(data.scenes[:, 0].tolist()) <= {-1, 0, 1, 2} and (data.scenes[:, 0] >= 0).sum() >= 30
    dataset = TransLocatorImageDataset(data, PairedAugmentation.for_crop(32), photo_set["seg"], "train", seed=3)
    samples = [dataset[i] for i in range(len(dataset))]
    bad = {s.key for s in samples if s.error}
    assert bad <= {CORRUPT_NAME, MISSING_NAME}
    good = [s for s in samples if s.error is None]
    assert all(s.class_map.shape == (32, 32) and s.plain is None for s in good)
    # Colour PNGs and id PNGs both decode to class ids (the random maps use all 150 classes).
    assert all(int(s.class_map[s.class_map != SEG_VOID].max()) > 100 for s in good[:4])
    batch = collate_translocator(samples[:6])
    assert batch.rgb.shape[0] == len(batch) == batch.cells.shape[0]
    model_batch = to_model_batch(batch, True, torch.device("cpu"))
    assert model_batch.seg.shape == model_batch.rgb.shape and model_batch.rgb.dtype == torch.float32
    # Without stored maps, the un-jittered crop travels along for an on-the-fly segmenter.
    unmapped = TransLocatorImageDataset(data, PairedAugmentation.for_crop(32), None, "train", seed=3)
    plain_samples = [unmapped[i] for i in range(4)]
    assert all(s.error is not None or (s.class_map is None and s.plain.shape == (3, 32, 32)) for s in plain_samples)
    with pytest.raises(ValueError, match="seg-maps"):
        to_model_batch(collate_translocator(plain_samples), True, torch.device("cpu"))


# ---------------------------------------------------------------------------------- CLI runs
def test_train_resume_and_predict(photo_set: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _run_cli(_train_args(photo_set, out, "--seg-maps", str(photo_set["seg"]), "--epochs", "1"))
    assert first.returncode == 0, first.stderr[-3000:]
    state = torch.load(out / STATE_NAME, weights_only=True)
    steps_per_epoch = int(state["step"])
    assert steps_per_epoch >= 1 and state["epoch"] == 1
    assert state["cells"]["fine"]["tokens"] == GeocellHierarchy.from_folder(photo_set["cells"], 1, (20, 10, 5)).fine.tokens
    resumed = _run_cli(_train_args(photo_set, out, "--seg-maps", str(photo_set["seg"]), "--epochs", "2", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert torch.load(out / STATE_NAME, weights_only=True)["step"] == 2 * steps_per_epoch
    log_lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_lines] == [1, 2] and log_lines[0]["skipped_images"] >= 1
    assert sorted(p.name for p in out.glob("translocator-*")) == [
        "translocator-epoch001.safetensors", "translocator-epoch002.safetensors", "translocator-last.safetensors"]

    # The checkpoint goes straight into the inference predictor.
    from geoapp.families.translocator.segmentation import load_segmenter
    from geoapp.families.translocator.locator import TransLocatorGeolocator

    model, cells, meta = load_translocator_checkpoint(out / "translocator-last.safetensors")
    assert not meta["random_weights"] and meta["extra"]["step"] == 2 * steps_per_epoch
    locator = TransLocatorGeolocator(model, cells, load_segmenter("tiny-test", "random"), torch.device("cpu"),
                                     meta["sha256"], str(out))
    prediction = locator.predict(photo_set["images"] / records_first_image(photo_set), top_k=3)
    assert len(prediction.candidates) >= 1
    assert RANDOM_WEIGHTS_WARNING in prediction.warnings  # the test segmenter is random: flagged


def records_first_image(photo_set: dict) -> str:
    return pd.read_csv(photo_set["csv"], dtype=str)["IMG_ID"].iloc[0]


def test_on_the_fly_segmenter_and_vit_mt(photo_set: dict, tmp_path: Path, caplog) -> None:
    from training.translocator.train import main as train_main

    caplog.set_level(logging.INFO, logger="training.translocator")
    args = _train_args(photo_set, tmp_path / "fly", "--segmenter", "tiny-test", "--segmenter-weights", "random",
                       "--max-steps", "1")
    assert train_main(args) == 0
    assert "RANDOM SEGMENTER WEIGHTS" in caplog.text
    assert train_main(_train_args(photo_set, tmp_path / "mt", "--vit-mt", "--max-steps", "1")) == 0
    model, _, _ = load_translocator_checkpoint(tmp_path / "mt" / "translocator-last.safetensors")
    assert not model.config.dual_branch


def test_two_process_ddp(photo_set: dict, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    # Global batch 8 = 2 ranks x micro-batch 2 x 2 accumulated micro-batches.
    result = _run_cli(_train_args(photo_set, out, "--seg-maps", str(photo_set["seg"]), "--micro-batch", "2",
                                  "--max-steps", "2"), timeout=180, torchrun=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stderr and "2 micro-batches of 2" in result.stderr
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert state["step"] == 2
    assert not any(key.startswith("module.") for key in state["model"])  # saved unwrapped from DDP
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1  # only rank 0 writes


def test_bad_runs_fail_with_messages(photo_set: dict, tmp_path: Path, capsys) -> None:
    from training.translocator.train import main as train_main

    assert train_main(["--csv", str(photo_set["csv"]), "--images", str(photo_set["images"]), "--cells",
                       str(tmp_path / "nowhere"), "--model", "tiny", "--out", str(tmp_path / "x")]) == 2
    assert "training.partition" in capsys.readouterr().err
    assert train_main(_train_args(photo_set, tmp_path / "y", "--batch-size", "10", "--micro-batch", "4")) == 2
    assert "multiple" in capsys.readouterr().err
    assert train_main(_train_args(photo_set, tmp_path / "z")) == 2
    assert "--seg-maps" in capsys.readouterr().err


def test_evaluate_cli(photo_set: dict, tmp_path: Path) -> None:
    from training.translocator.evaluate import main as evaluate_main

    cells = GeocellHierarchy.from_folder(photo_set["cells"], 1, (20, 10, 5))
    model = build_translocator(TransLocatorConfig.tiny(cell_counts=cells.sizes), "random")
    from geoapp.families.translocator.network import save_translocator_checkpoint

    checkpoint = save_translocator_checkpoint(model, tmp_path / "random.pt", cells)
    out = tmp_path / "eval"
    code = evaluate_main(["--checkpoint", str(checkpoint), "--csv", str(photo_set["csv"]), "--images",
                          str(photo_set["images"]), "--seg-maps", str(photo_set["seg"]), "--tencrop", "--workers", "0",
                          "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] and summary["failed"] == 2 and summary["n"] == 40
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions["pred_lat"].notna().sum() == 40
    # Every prediction is the mean coordinate of a fine cell.
    fine = {(round(a, 4), round(b, 4)) for a, b in cells.fine.coords}
    assert {(round(a, 4), round(b, 4)) for a, b in predictions[["pred_lat", "pred_lon"]].dropna().to_numpy()} <= fine


def test_partition_cli(tmp_path: Path) -> None:
    from training.partition import main as partition_main

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"IMG_ID": [f"{k}.jpg" for k in range(3000)], "LAT": rng.normal(45, 5, 3000),
                          "LON": rng.normal(5, 8, 3000)})
    frame.loc[3, "LAT"] = 123.0  # bad row: skipped and counted
    frame.to_csv(tmp_path / "data.csv", index=False)
    assert partition_main(["--csv", str(tmp_path / "data.csv"), "--out", str(tmp_path / "cells"), "--min", "5",
                           "--max", "300", "100", "50"]) == 0
    hierarchy = GeocellHierarchy.from_folder(tmp_path / "cells", 5, (300, 100, 50))
    assert hierarchy.sizes[0] < hierarchy.sizes[2]
    assert partition_main(["--csv", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "c2")]) == 2


# ---------------------------------------------------------------------------------- SatWorld
def test_satworld_tiny_run_beats_most_common_location(tmp_path: Path) -> None:
    from training.translocator.satworld import TINY, run

    results = run(TINY, tmp_path / "satworld")
    test = results["test"]
    assert test["translocator"]["accuracy"]["750"] > test["baseline_most_common"]["accuracy"]["750"]
    assert test["translocator"]["geoguessr_score"] > test["baseline_most_common"]["geoguessr_score"]
    model, cells, meta = load_translocator_checkpoint(tmp_path / "satworld" / "translocator" / "translocator-last.safetensors")
    assert cells.sizes == tuple(results["geocells"]) and not meta["random_weights"]


def test_hierarchical_cell_choice() -> None:
    from training.translocator.evaluate import fine_cell_scores, predicted_locations

    # Two clusters; each coarse cell holds fine cells of one cluster only.
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal([48.0, 2.0], 0.5, (40, 2)), rng.normal([-33.0, 151.0], 0.5, (40, 2))])
    cells = GeocellHierarchy.build(points[:, 0], points[:, 1], min_count=1, max_counts=(60, 30, 12))
    coarse_n, middle_n, fine_n = cells.sizes
    fine = torch.zeros(1, fine_n)
    in_europe = np.flatnonzero(cells.fine.lat > 0)
    in_australia = np.flatnonzero(cells.fine.lat < 0)
    fine[0, in_europe[0]] = 2.0  # the fine head prefers a European cell, slightly
    fine[0, in_australia[0]] = 1.9
    coarse = torch.zeros(1, coarse_n)
    coarse[0, cells.fine_to_coarse[in_australia[0]]] = 5.0  # the coarse head is sure it is Australia
    middle = torch.zeros(1, middle_n)
    logits = (coarse, middle, fine)
    assert predicted_locations(cells, logits)[0, 0] > 0
    assert predicted_locations(cells, logits, hierarchical=True)[0, 0] < 0
    assert torch.equal(fine_cell_scores(cells, logits), fine)
