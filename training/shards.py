"""WebDataset-style ``.tar`` shards, written and read with the standard library's ``tarfile``.

Each sample is two consecutive tar members sharing a key: ``{key}.jpg`` (the image bytes)
and ``{key}.json`` (``{"id": ..., "lat": ..., "lon": ..., ...extra columns}``). Keys are the
row number zero-padded (``000001234``): WebDataset splits a key from its extension at the
first dot, and dataset ids such as ``45/77/3228511372.jpg`` contain dots and slashes, so the
original id travels in the JSON instead. Files written this way are readable by the
``webdataset`` package too, but nothing here depends on it.

Images are checked when a shard is written (decoded once with :func:`geoapp.imaging.load_image`):
missing and corrupt files are skipped and counted there, so training never meets them.
JPEG files are stored byte for byte; other formats (PNG, HEIC, ...) are re-encoded as JPEG.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import IterableDataset, get_worker_info

from geoapp.fileio import atomic_write, atomic_write_path
from geoapp.imaging import ImageLoadError, load_image

from training.data import GeoRecords, Sample, SkipCounter

SHARD_PATTERN = "shard-{index:06d}.tar"
SHARDS_MANIFEST = "shards.json"
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class ShardItem:
    """One sample read back from a shard."""

    key: str
    image: bytes
    meta: dict[str, Any]


def _jpeg_bytes(path: Path) -> bytes:
    """The file's bytes if it is a decodable JPEG, else a JPEG re-encoding; ImageLoadError if unusable."""
    loaded = load_image(path)  # decodes fully: catches truncated / corrupt files now, not in training
    data = path.read_bytes()
    if data[:3] == _JPEG_MAGIC:
        return data
    buffer = io.BytesIO()
    loaded.image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards: same input, same bytes
    tar.addfile(info, io.BytesIO(data))


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_shards(records: GeoRecords, out_dir: Path, shard_size: int = 5000,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write ``records`` as ``shard-NNNNNN.tar`` files of ``shard_size`` rows each; returns the manifest.

    Resumable: a shard whose ``.tar`` already exists is kept (shards are renamed into place
    only when complete). Bad images are skipped and counted per shard.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    extras = records.extras.to_dict(orient="records")
    for index, start in enumerate(range(0, len(records), shard_size)):
        path = out_dir / SHARD_PATTERN.format(index=index)
        rows = range(start, min(start + shard_size, len(records)))
        if path.is_file():
            shards.append({"file": path.name, "rows": len(rows), "resumed": True})
            if progress:
                progress(len(rows))
            continue
        skipped = SkipCounter()
        written = [0]

        def write_shard(tmp: str) -> None:
            with tarfile.open(tmp, "w") as tar:
                for row in rows:
                    key = f"{row:09d}"
                    image_path = records.paths[row]
                    try:
                        if image_path is None:
                            raise ImageLoadError(records.ids[row], "no image folder given")
                        data = _jpeg_bytes(image_path)
                    except (ImageLoadError, OSError) as error:
                        skipped.add(records.ids[row], str(error))
                        continue
                    lat, lon = (float(v) for v in records.coords[row])
                    meta = {"id": records.ids[row], "lat": lat, "lon": lon,
                            **{k: _json_safe(v) for k, v in extras[row].items()}}
                    _add_member(tar, f"{key}.jpg", data)
                    _add_member(tar, f"{key}.json", json.dumps(meta).encode())
                    written[0] += 1

        atomic_write_path(path, write_shard)
        shards.append({"file": path.name, "rows": len(rows), "written": written[0], "skipped": skipped.to_dict()})
        if progress:
            progress(len(rows))
    manifest = {"format": "geoapp.shards.v1", "dataset": records.name, "samples": len(records),
                "shard_size": shard_size, "shards": shards}
    atomic_write(out_dir / SHARDS_MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def iter_shard(path: Path, skipped: SkipCounter | None = None) -> Iterator[ShardItem]:
    """Samples of one shard in order; incomplete pairs, bad JSON or a damaged tar are skipped and counted."""
    current_key: str | None = None
    parts: dict[str, bytes] = {}

    def finish() -> ShardItem | None:
        if current_key is None:
            return None
        if "jpg" not in parts or "json" not in parts:
            if skipped is not None:
                skipped.add(f"{path.name}:{current_key}", "incomplete sample (needs .jpg and .json)")
            return None
        try:
            meta = json.loads(parts["json"])
            float(meta["lat"]), float(meta["lon"])
        except (ValueError, KeyError, TypeError) as error:
            if skipped is not None:
                skipped.add(f"{path.name}:{current_key}", f"bad metadata ({error})")
            return None
        return ShardItem(current_key, parts["jpg"], meta)

    try:
        with tarfile.open(path, "r") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                key, _, ext = base.partition(".")
                if key != current_key:
                    item = finish()
                    if item is not None:
                        yield item
                    current_key, parts = key, {}
                handle = tar.extractfile(member)
                if handle is not None:
                    parts[ext.lower()] = handle.read()
            item = finish()
            if item is not None:
                yield item
    except (tarfile.TarError, OSError, EOFError) as error:
        if skipped is not None:
            skipped.add(path.name, f"damaged shard ({error}); the rest of it was skipped")


def list_shards(pattern_or_dir: str | Path) -> list[Path]:
    """Shard files from a folder (``*.tar`` inside) or a glob pattern, sorted."""
    path = Path(pattern_or_dir)
    found = sorted(path.glob("*.tar")) if path.is_dir() else sorted(Path(p) for p in glob.glob(str(path)))
    if not found:
        raise FileNotFoundError(f"no .tar shards found at {pattern_or_dir}")
    return found


def split_for_worker(items: Sequence[Any], rank: int = 0, world: int = 1) -> list[Any]:
    """Round-robin share of ``items`` for this (rank, DataLoader worker)."""
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    slot, slots = rank * workers + worker, world * workers
    return list(items[slot::slots])


class ShardImageDataset(IterableDataset):
    """Stream :class:`~training.data.Sample` objects from shards; this rank/worker reads its share of them.

    Decode failures and damaged shard entries come back as samples with ``error`` set
    (see :func:`training.data.collate_samples`), so the consumer can count them.
    """

    def __init__(self, shards: Sequence[Path], transform: Callable[[Any], torch.Tensor], rank: int = 0,
                 world: int = 1, min_side: int | None = 224) -> None:
        self.shards = list(shards)
        self.transform = transform
        self.rank, self.world = rank, world
        self.min_side = min_side

    def __iter__(self) -> Iterator[Sample]:
        for shard in split_for_worker(self.shards, self.rank, self.world):
            # Tar-level problems are reported as failed samples too: this counter lives in a
            # DataLoader worker, so the consumer only learns about them through the stream.
            problems = SkipCounter()
            for position, item in enumerate(iter_shard(shard, problems)):
                latlon = (float(item.meta["lat"]), float(item.meta["lon"]))
                key = str(item.meta.get("id", item.key))
                try:
                    loaded = load_image(item.image, name=key, min_side=self.min_side)
                    yield Sample(position, key, latlon, pixels=self.transform(loaded.image))
                except ImageLoadError as error:
                    yield Sample(position, key, latlon, error=str(error))
            for example in problems.examples:
                yield Sample(-1, shard.name, (0.0, 0.0), error=example)
