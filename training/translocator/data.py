"""TransLocator training data: photos + segmentation maps + geocell and scene labels.

Dataset spec = a CSV read by :func:`training.data.read_records` (image id/path, LAT, LON and,
optionally, the Places365 scene columns ``S3_Label``, ``S16_Label``, ``S365_Label`` of the
GeoEstimation CSVs) + the image root. Labels: the geocell of each photo at the three levels of a
:class:`~geoapp.geo.geocells.GeocellHierarchy` (-1 where a level has no cell there; photos in no
cell at all are dropped and counted) and the scene classes (-1 when unknown).

Segmentation maps, either
  * precomputed: ``seg_dir/<image id with .png>`` — a single-channel PNG of ADE20K class ids
    (0..149, 255 = none) or an ADE20K-palette colour PNG (what the TransLocator authors ship);
  * or computed on the fly: the dataset then returns only photos, and the trainer runs a
    segmenter on the un-jittered crops (:func:`model_inputs`).

A missing or unreadable photo (or precomputed map) is skipped and counted, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from geoapp.geo.geocells import GeocellHierarchy
from geoapp.imaging import ImageLoadError, load_image
from geoapp.families.translocator.ade20k import ADE20K_PALETTE, NUM_CLASSES, classes_from_colours
from geoapp.families.translocator.network import IN21K_MEAN, IN21K_STD, SEG_MEAN, SEG_STD
from training.translocator.loss import TransLocatorTargets

from training.data import GeoRecords

from .augment import SEG_VOID, PairedAugmentation, centre_crop_views, sample_generator, ten_crop_views, training_views

SCENE_COLUMNS = ("S3_Label", "S16_Label", "S365_Label")
# Palette with one more colour: black for "no class" (SEG_VOID), like the photo's black fill.
_PALETTE = np.zeros((256, 3), dtype=np.uint8)
_PALETTE[:NUM_CLASSES] = ADE20K_PALETTE


# ---------------------------------------------------------------------------------------- labels
@dataclass
class LabelledRecords:
    """Rows that fall in at least one geocell, with their labels."""

    records: GeoRecords
    cells: np.ndarray  # [N, 3] int64 coarse/middle/fine class (-1: none at that level)
    scenes: np.ndarray  # [N, len(SCENE_COLUMNS)] int64 (-1: unknown)
    dropped_outside_cells: int = 0

    def __len__(self) -> int:
        return len(self.records)


def scene_labels(extras: pd.DataFrame, columns: tuple[str, ...] = SCENE_COLUMNS) -> np.ndarray:
    """Scene class per row and level from the CSV's extra columns; -1 when absent or not a number."""
    labels = np.full((len(extras), len(columns)), -1, dtype=np.int64)
    for k, column in enumerate(columns):
        if column in extras.columns:
            values = pd.to_numeric(extras[column], errors="coerce").to_numpy()
            valid = np.isfinite(values) & (values >= 0)
            labels[valid, k] = values[valid].astype(np.int64)
    return labels


def label_records(records: GeoRecords, cells: GeocellHierarchy) -> LabelledRecords:
    """Geocell labels at the three levels + scene labels; rows in no cell at all are dropped."""
    coarse, middle, fine = cells.assign(records.coords[:, 0], records.coords[:, 1])
    labels = np.stack([coarse, middle, fine], axis=1).astype(np.int64)
    keep = np.flatnonzero((labels >= 0).any(axis=1))
    scenes = scene_labels(records.extras)
    return LabelledRecords(records.subset(keep), labels[keep], scenes[keep], int(len(records) - len(keep)))


# ---------------------------------------------------------------------------------------- maps
def read_class_map(path: Path) -> torch.Tensor:
    """A stored segmentation map -> uint8 [H, W] class ids (SEG_VOID where none)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGB", "RGBA"):
                ids = classes_from_colours(np.asarray(image.convert("RGB")))
                return torch.from_numpy(np.where(ids < 0, SEG_VOID, ids).astype(np.uint8))
            if image.mode in ("L", "P", "I", "I;16"):
                ids = np.asarray(image)
                ids = np.where((ids < 0) | (ids >= NUM_CLASSES), SEG_VOID, ids)
                return torch.from_numpy(ids.astype(np.uint8))
            raise ValueError(f"unsupported segmentation PNG mode {image.mode!r} (want L/P class ids or RGB palette)")
    except (OSError, ValueError) as error:
        raise ImageLoadError(f"{path}: cannot read segmentation map: {error}") from error


def seg_map_path(seg_dir: Path, image_id: str) -> Path:
    """``seg_dir/<id>`` with the extension replaced by ``.png`` (sub-folders kept: ``3f/c4/1.png``)."""
    return seg_dir / Path(image_id).with_suffix(".png")


def colourise_maps(class_maps: torch.Tensor) -> torch.Tensor:
    """uint8/long [B, H, W] class ids -> uint8 [B, 3, H, W] ADE20K colours (black for SEG_VOID)."""
    palette = torch.from_numpy(_PALETTE).to(class_maps.device)
    return palette[class_maps.long().clamp(0, 255)].permute(0, 3, 1, 2).contiguous()


def normalise(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float, (x / 255 - mean) / std."""
    mean_t = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean_t) / std_t


# ---------------------------------------------------------------------------------------- dataset
@dataclass
class TransLocatorSample:
    index: int
    key: str
    rgb: torch.Tensor | None = None  # uint8 [3, S, S] (training: jittered) or [10 | 1, 3, S, S] (evaluation)
    plain: torch.Tensor | None = None  # training: the crop before colour jitter (for an on-the-fly segmenter)
    class_map: torch.Tensor | None = None  # uint8 [S, S] / [10 | 1, S, S]; None: segment on the fly
    cells: tuple[int, int, int] = (-1, -1, -1)
    scenes: tuple[int, ...] = ()
    latlon: tuple[float, float] = (0.0, 0.0)
    error: str | None = None


@dataclass
class TransLocatorBatch:
    """Collated readable samples (evaluation batches carry the crops of each image in a row)."""

    indices: list[int]
    rgb: torch.Tensor  # uint8 [B, 3, S, S] or [B * crops, 3, S, S]
    plain: torch.Tensor | None
    class_maps: torch.Tensor | None
    cells: torch.Tensor  # [B, 3] long
    scenes: torch.Tensor  # [B, levels] long
    latlon: torch.Tensor  # [B, 2] float64
    crops_per_image: int = 1
    failures: list[TransLocatorSample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    def targets(self) -> TransLocatorTargets:
        scenes = tuple(self.scenes.unbind(dim=1)) if self.scenes.numel() else None
        return TransLocatorTargets(tuple(self.cells.unbind(dim=1)), scenes)


class TransLocatorImageDataset(Dataset):
    """Photos (+ precomputed maps) with labels; ``mode`` = "train" (paper augmentation),
    "tencrop" or "centre" (evaluation views). Sample views depend on (seed, epoch, index) only."""

    def __init__(self, data: LabelledRecords, aug: PairedAugmentation, seg_dir: Path | None = None,
                 mode: str = "train", seed: int = 0) -> None:
        if mode not in ("train", "tencrop", "centre"):
            raise ValueError(f"mode must be train, tencrop or centre, not {mode!r}")
        if data.records.paths and data.records.paths[0] is None:
            raise ValueError("this dataset has no image folder; pass --images")
        self.data, self.aug, self.seg_dir, self.mode, self.seed = data, aug, seg_dir, mode, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> TransLocatorSample:
        records = self.data.records
        key = records.ids[index]
        sample = TransLocatorSample(index, key, cells=tuple(int(v) for v in self.data.cells[index]),
                                    scenes=tuple(int(v) for v in self.data.scenes[index]),
                                    latlon=(float(records.coords[index, 0]), float(records.coords[index, 1])))
        try:
            loaded = load_image(records.paths[index], min_side=self.aug.resize)
            rgb = torch.from_numpy(np.asarray(loaded.image, dtype=np.uint8).copy()).permute(2, 0, 1)
            class_map = None
            if self.seg_dir is not None:
                class_map = read_class_map(seg_map_path(self.seg_dir, key))
                if tuple(class_map.shape) != tuple(rgb.shape[1:]):
                    # Maps made at another resolution (or before EXIF rotation) are resized to the photo.
                    class_map = TF.resize(class_map[None], list(rgb.shape[1:]),
                                          interpolation=InterpolationMode.NEAREST)[0]
        except ImageLoadError as error:
            sample.error = str(error)
            return sample
        if self.mode == "train":
            generator = sample_generator(self.seed, self.epoch, index)
            sample.rgb, plain, sample.class_map = training_views(rgb, class_map, self.aug, generator)
            sample.plain = plain if class_map is None else None
        elif self.mode == "tencrop":
            sample.rgb, sample.class_map = ten_crop_views(rgb, class_map, self.aug.crop, self.aug.resize)
        else:
            sample.rgb, sample.class_map = centre_crop_views(rgb, class_map, self.aug.crop, self.aug.resize)
        return sample


def collate_translocator(samples: list[TransLocatorSample]) -> TransLocatorBatch:
    """Stack the readable samples; unreadable ones go to ``failures`` for the caller to count."""
    good = [s for s in samples if s.error is None]
    bad = [s for s in samples if s.error is not None]
    levels = len(samples[0].scenes) if samples else 0
    if not good:
        empty = torch.zeros(0, 3, 1, 1, dtype=torch.uint8)
        return TransLocatorBatch([], empty, None, None, torch.zeros(0, 3, dtype=torch.long),
                                 torch.zeros(0, levels, dtype=torch.long), torch.zeros(0, 2, dtype=torch.float64),
                                 failures=bad)
    evaluation = good[0].rgb.dim() == 4
    crops = good[0].rgb.shape[0] if evaluation else 1
    rgb = torch.cat([s.rgb for s in good]) if evaluation else torch.stack([s.rgb for s in good])
    maps = None
    if good[0].class_map is not None:
        maps = torch.cat([s.class_map for s in good]) if evaluation else torch.stack([s.class_map for s in good])
    plain = torch.stack([s.plain for s in good]) if good[0].plain is not None else None
    return TransLocatorBatch(
        indices=[s.index for s in good], rgb=rgb, plain=plain, class_maps=maps,
        cells=torch.tensor([s.cells for s in good], dtype=torch.long),
        scenes=torch.tensor([s.scenes for s in good], dtype=torch.long).reshape(len(good), levels),
        latlon=torch.tensor([s.latlon for s in good], dtype=torch.float64), crops_per_image=crops, failures=bad)


# ---------------------------------------------------------------------------------------- model inputs
@dataclass
class ModelBatch:
    """What one forward needs, on the device: normalised pixels and the targets."""

    rgb: torch.Tensor  # float [B, 3, S, S]
    seg: torch.Tensor | None  # float [B, 3, S, S] (colourised map) or None for ViT-MT
    targets: TransLocatorTargets
    size: int  # images (B, or B / crops for evaluation batches)


def model_inputs(rgb: torch.Tensor, class_maps: torch.Tensor | None, plain: torch.Tensor | None,
                 dual_branch: bool, device: torch.device, segmenter=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 photos (+ maps) -> normalised model inputs on ``device``; runs ``segmenter`` on the plain
    (un-jittered) crops when no map was given."""
    rgb_in = normalise(rgb.to(device, non_blocking=True), IN21K_MEAN, IN21K_STD)
    if not dual_branch:
        return rgb_in, None
    if class_maps is None:
        if segmenter is None:
            raise ValueError("the dual-branch TransLocator needs segmentation maps: pass --seg-maps DIR "
                             "or --segmenter NAME (on the fly)")
        source = plain if plain is not None else rgb
        class_maps = segmenter.segment(source.to(segmenter.device)).to(device)
    seg_in = normalise(colourise_maps(class_maps.to(device)), SEG_MEAN, SEG_STD)
    return rgb_in, seg_in


def to_model_batch(batch: TransLocatorBatch, dual_branch: bool, device: torch.device, segmenter=None) -> ModelBatch:
    rgb, seg = model_inputs(batch.rgb, batch.class_maps, batch.plain, dual_branch, device, segmenter)
    targets = batch.targets()
    targets = TransLocatorTargets(tuple(t.to(device) for t in targets.cells),
                                  None if targets.scenes is None else tuple(t.to(device) for t in targets.scenes))
    return ModelBatch(rgb, seg, targets, len(batch))
