"""The GeoCLIP trainer: paper defaults, learning on a toy problem, fine branch, checkpoints -> Geolocator."""

from __future__ import annotations

import json
import math

import pytest
import torch

from geoapp import Geolocator
from geoapp.models.checkpoint import load_checkpoint
from geoapp.models.geoclip import HEADS_FORMAT, build_geoclip
from geoapp.models.location_encoder import DEFAULT_SIGMAS

from training.gps import GPSQueue
from training.heads import FINE_SIGMA, build_heads
from training.objective import contrastive_loss
from training.train_geoclip import TrainConfig, Trainer, main

from .conftest import make_image_folder, toy_features


def test_paper_defaults(toy_store, tmp_path):
    config = TrainConfig(out=str(tmp_path / "run"), features=str(toy_store), workers=0, device="cpu")
    assert (config.batch_size, config.queue_size, config.lr, config.weight_decay, config.gamma) == (512, 4096, 3e-5, 1e-6, 0.87)
    trainer = Trainer(config)
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.Adam) and group["lr"] == 3e-5 and group["weight_decay"] == 1e-6
    assert isinstance(trainer.scheduler, torch.optim.lr_scheduler.StepLR)
    assert trainer.scheduler.step_size == 1 and trainer.scheduler.gamma == 0.87
    assert trainer.heads.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert trainer.heads.location_encoder.sigmas == DEFAULT_SIGMAS
    trainable = {name for name, p in trainer.heads.named_parameters() if p.requires_grad}
    assert "logit_scale" in trainable and not any("frequencies" in n for n in trainable)  # Fourier matrices stay fixed


def test_one_step_reduces_loss_on_toy_problem(toy_store, tmp_path):
    trainer = Trainer(TrainConfig(out=str(tmp_path / "run"), features=str(toy_store), init="random", lr=1e-4,
                                  gps_noise_m=0.0, workers=0, device="cpu"))
    features, coords = toy_features(n=64, seed=3)
    features, coords = torch.from_numpy(features), torch.from_numpy(coords)
    empty = GPSQueue(0)
    with torch.no_grad():
        before = contrastive_loss(trainer.heads, features, coords, empty, 0.0).item()
    trainer.train_step(features, coords)
    with torch.no_grad():
        after = contrastive_loss(trainer.heads, features, coords, empty, 0.0).item()
    assert after < before


def test_epochs_learn_and_decay_lr(small_toy_store, tmp_path):
    records = Trainer(TrainConfig(out=str(tmp_path / "run"), features=str(small_toy_store), init="random", lr=1e-3,
                                  batch_size=32, epochs=3, queue_size=64, workers=0, device="cpu",
                                  log_every=0)).run()
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[-1]["loss"] < records[0]["loss"]
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 0.87e-3, 0.87**2 * 1e-3])
    assert all(r["samples"] == 96 for r in records)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and (tmp_path / "run" / "heads-epoch003.safetensors").is_file()


def test_fine_branch_starts_as_the_pretrained_model():
    pretrained, _ = build_heads("pretrained")
    fine, description = build_heads("pretrained", fine_branch=True)
    assert fine.location_encoder.sigmas == (*DEFAULT_SIGMAS, FINE_SIGMA) and "fine branch" in description
    coords = torch.tensor([[48.85, 2.35], [-33.9, 151.2], [0.0, 0.0]])
    with torch.no_grad():
        torch.testing.assert_close(fine.location_encoder(coords), pretrained.location_encoder(coords))
    for old, new in zip(pretrained.location_encoder.branches, fine.location_encoder.branches):
        torch.testing.assert_close(new.fourier.frequencies, old.fourier.frequencies)
    # From scratch the new branch is an ordinary random branch.
    scratch, _ = build_heads("random", fine_branch=True)
    assert scratch.location_encoder.sigmas[-1] == FINE_SIGMA
    assert scratch.location_encoder.branches[-1].head.weight.abs().sum() > 0


def test_checkpoint_loads_into_geolocator(toy_store, tmp_path, capsys, small_gallery_csv, dev_dir, dev_truth):
    run = tmp_path / "run"
    assert main(["--features", str(toy_store), "--out", str(run), "--init", "pretrained", "--fine-branch",
                 "--batch-size", "32", "--max-steps", "2", "--lr", "1e-3", "--workers", "0", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"][0]["step"] == 2
    checkpoint = run / "heads-last.safetensors"
    saved = load_checkpoint(checkpoint, HEADS_FORMAT)
    assert saved.format == "geoapp.geoclip_heads.v1" and saved.meta["extra"]["step"] == 2
    state = {"location_encoder": saved.sub_state("location_encoder"), "image_head": saved.sub_state("image_head")}

    locator = Geolocator.load(backbone="tiny-test", backbone_weights="random", heads=checkpoint,
                              gallery=small_gallery_csv, device="cpu")
    assert locator.model.location_encoder.sigmas == (*DEFAULT_SIGMAS, FINE_SIGMA)
    for name, value in locator.model.location_encoder.state_dict().items():
        torch.testing.assert_close(value, state["location_encoder"][name])
    for name, value in locator.model.image_head.state_dict().items():
        torch.testing.assert_close(value, state["image_head"][name])
    # Training moved the weights away from the pretrained ones, fine branch included.
    assert state["location_encoder"]["branches.3.head.weight"].abs().sum() > 0
    pretrained, _ = build_geoclip("tiny-test", "random", "pretrained")
    assert not torch.equal(pretrained.image_head[0].weight, locator.model.image_head[0].weight)
    prediction = locator.predict(dev_dir / dev_truth["IMG_ID"][0], top_k=3)
    assert prediction.ok and len(prediction.candidates) == 3 and prediction.random_weights


def test_resume_continues_where_it_stopped(small_toy_store, tmp_path):
    base = dict(out=str(tmp_path / "run"), features=str(small_toy_store), init="random", batch_size=32, queue_size=80,
                workers=0, device="cpu", log_every=0)
    Trainer(TrainConfig(**base, epochs=1)).run()
    resumed = Trainer(TrainConfig(**base, epochs=2, resume=True))
    assert (resumed.epoch, resumed.step, len(resumed.queue)) == (1, 3, 80)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(3e-5 * 0.87)
    records = resumed.run()
    assert [r["epoch"] for r in records] == [1] and records[0]["step"] == 6


def test_train_from_images_skips_bad_files(tmp_path, dev_dir, dev_truth):
    csv = make_image_folder(tmp_path / "src", dev_dir, dev_truth, n=4)
    records = Trainer(TrainConfig(out=str(tmp_path / "run"), csv=str(csv), images=str(tmp_path / "src" / "images"),
                                  backbone="tiny-test", backbone_weights="random", init="random", batch_size=3,
                                  epochs=1, workers=0, device="cpu", log_every=0)).run()
    assert records[0]["samples"] == 4 and records[0]["skipped_images"] == 2
    assert (tmp_path / "run" / "heads-last.safetensors").is_file()


def test_train_from_shards(tmp_path, dev_dir, dev_truth):
    from training.data import DatasetSpec, read_records
    from training.shards import write_shards

    csv = make_image_folder(tmp_path / "src", dev_dir, dev_truth, n=4)
    write_shards(read_records(DatasetSpec(csv, tmp_path / "src" / "images"), require_images=True),
                 tmp_path / "shards", shard_size=2)
    records = Trainer(TrainConfig(out=str(tmp_path / "run"), shards=str(tmp_path / "shards"), backbone="tiny-test",
                                  backbone_weights="random", init="random", batch_size=3, epochs=1, workers=0,
                                  device="cpu", log_every=0)).run()
    assert records[0]["samples"] == 4 and records[0]["step"] == 2  # 3 shards (2, 2, 0 photos): batches of <= 3


def test_validation_after_each_epoch(toy_store, tmp_path, small_gallery_csv):
    records = Trainer(TrainConfig(out=str(tmp_path / "run"), features=str(toy_store), init="pretrained", batch_size=64,
                                  max_steps=1, workers=0, device="cpu", log_every=0, val_features=str(toy_store),
                                  val_gallery=str(small_gallery_csv))).run()
    validation = records[0]["validation"]
    assert validation["n"] == 256 and set(validation["accuracy"]) == {"1", "25", "200", "750", "2500"}
    assert 0 <= validation["median_km"] <= 20_016
