"""Pretrained weight files: what they are, where they come from, where they are on disk.

Weights are described apart from the architectures (as in open_clip's ``pretrained.py``):
each :class:`WeightFile` names its source, its licence and, where known, its SHA-256.

Finding weights never touches the network: loading either finds the file locally or fails
at once with :class:`WeightsMissingError`, which names the file and the command that fetches
it. Only :func:`download` (``python -m geoapp weights download [TARGET]``) goes online.

Sources: ``pypi:<package>/<path>`` (inside an installed wheel), ``hf-hub:<repo id>`` (the
standard Hugging Face cache), ``url:<address>`` (a plain download kept in torch hub's
``checkpoints`` folder, like ``torch.hub.load_state_dict_from_url`` does), ``asset:<path>`` (shipped
in this repository, relative to its root) and ``local:<folder>`` (a checkpoint trained by the user:
looked for in the weights dir, its ``<folder>/`` and ``assets/<folder>/``).

Which files exist is the families' business: each family's spec lists its files
(:mod:`geoapp.families.registry`); this module only describes, finds and fetches them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from geoapp.fileio import move_into_place
from geoapp.settings import Settings, get_settings

DOWNLOAD_COMMAND = "python -m geoapp weights download"
DEFAULT_DOWNLOAD_TARGET = "backbone"  # what `weights download` fetches without a TARGET
REPO_ROOT = Path(__file__).resolve().parents[2]
# File names shared by many hub repos: never looked up flat in the weights dir (ambiguous there).
GENERIC_FILENAMES = frozenset({"model.safetensors", "pytorch_model.bin", "config.json"})


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
    # Files of the same repo that must sit in the same folder (an smp checkpoint is
    # config.json + model.safetensors); downloaded together, and a copy without them is ignored.
    companions: tuple[str, ...] = ()
    revision: str | None = None  # Hugging Face revision to use (None: the repo's main branch)
    download_target: str | None = None  # argument of `geoapp weights download` (None: the default target)
    optional: bool = False  # not needed for the family's real results (listed apart by `weights status`)
    how_to_get: str | None = None  # the fix when it is missing, where no download exists (trained checkpoints)

    @property
    def origin(self) -> str:
        kind, _, where = self.source.partition(":")
        if kind == "pypi":
            return f"PyPI package {where.split('/')[0]!r}"
        if kind == "url":
            return f"download URL {where}"
        if kind == "asset":
            return "this repository (assets/)"
        if kind == "local":
            return "a checkpoint you train"
        return f"Hugging Face repo {where!r}"

    @property
    def download_command(self) -> str:
        if self.download_target in (None, DEFAULT_DOWNLOAD_TARGET):
            return DOWNLOAD_COMMAND
        return f"{DOWNLOAD_COMMAND} {self.download_target}"

    def fix_hint(self) -> str:
        if self.how_to_get:
            return self.how_to_get
        if self.source.startswith("asset:"):
            return f"it ships with geoapp at {REPO_ROOT / self.source[len('asset:'):]}: restore it with `git checkout -- " \
                   f"{self.source[len('asset:'):]}`"
        if self.source.startswith("pypi:"):
            package = self.source[len("pypi:") :].split("/")[0]
            return f"install it with `pip install -r requirements.txt` (it ships in the {package!r} package)"
        if self.source.startswith("url:"):
            return (
                f"fetch it with `{self.download_command}` (needs internet), or download {self.source[4:]} "
                f"by hand into {torch_hub_checkpoints_dir()} or the folder named by $GEOAPP_WEIGHTS_DIR / --weights-dir"
            )
        together = f" (with {', '.join(self.companions)} beside it, in a folder named {self.source.split('/')[-1]})" \
            if self.companions else ""
        return (
            f"fetch it with `{self.download_command}` (needs internet), or copy {self.filename}{together} into "
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
    download_target=DEFAULT_DOWNLOAD_TARGET,
)


# The map-tile family's photo encoder (and the frozen trunk of its map encoders), as the paper uses it.
CLIP_VIT_B32_OPENAI = WeightFile(
    key="clip/ViT-B-32/openai",
    description="CLIP ViT-B/32 image encoder, OpenAI weights (open_clip format, ~600 MB): the map-tile family's "
                "photo encoder and map-encoder trunk",
    filename="open_clip_model.safetensors",
    source="hf-hub:timm/vit_base_patch32_clip_224.openai",
    licence="MIT (OpenAI CLIP)",
    alternatives=("open_clip_pytorch_model.bin",),
    download_target="vit-b-32",
    optional=True,  # the shipped cross-view checkpoint carries its own small encoder
)


# ADE20K semantic segmenters (TransLocator's second input), as segmentation_models_pytorch
# publishes them on its `smp-hub` org: config.json + model.safetensors, loaded with
# `smp.from_pretrained`. Revisions are not pinned (no full commit id is recorded for them);
# set `revision` to a commit id to pin one.
SEGFORMER_B2_ADE20K = WeightFile(
    key="smp-hub/segformer-b2-512x512-ade-160k",
    description="SegFormer-B2 ADE20K segmenter (150 classes, 512 px, ~27M parameters, ~110 MB)",
    filename="model.safetensors",
    source="hf-hub:smp-hub/segformer-b2-512x512-ade-160k",
    licence="NVIDIA Source Code License for SegFormer (non-commercial use)",
    companions=("config.json",),
    download_target="segmenter",
    optional=True,
)
SEGFORMER_B0_ADE20K = WeightFile(
    key="smp-hub/segformer-b0-512x512-ade-160k",
    description="SegFormer-B0 ADE20K segmenter (150 classes, 512 px, ~4M parameters, fast on CPU)",
    filename="model.safetensors",
    source="hf-hub:smp-hub/segformer-b0-512x512-ade-160k",
    licence="NVIDIA Source Code License for SegFormer (non-commercial use)",
    companions=("config.json",),
    download_target="segformer-b0-ade20k",
    optional=True,
)
UPERNET_CONVNEXT_TINY_ADE20K = WeightFile(
    key="smp-hub/upernet-convnext-tiny",
    description="UPerNet ConvNeXt-T ADE20K segmenter (150 classes, 512 px, ~60M parameters)",
    filename="model.safetensors",
    source="hf-hub:smp-hub/upernet-convnext-tiny",
    licence="MIT (OpenMMLab UPerNet weights, converted by segmentation_models_pytorch)",
    companions=("config.json",),
    download_target="upernet-convnext-tiny-ade20k",
    optional=True,
)
# ImageNet initialisation for training one's own HRNet segmenter (timm's default hrnet_w18 tag).
HRNET_W18_IMAGENET = WeightFile(
    key="timm/hrnet_w18.ms_aug_in1k",
    description="HRNet-W18 ImageNet-1k encoder initialisation (for training an ADE20K segmenter)",
    filename="model.safetensors",
    source="hf-hub:timm/hrnet_w18.ms_aug_in1k",
    licence="MIT (HRNet)",
    alternatives=("pytorch_model.bin",),
    download_target="hrnet-w18-imagenet",
    optional=True,
)

# Places365 scene classifiers (CSAIL, MIT licence): torchvision ResNets with 365 outputs,
# checkpoints {"state_dict": {"module.<name>": tensor}} served as plain files.
PLACES365_URL = "http://places2.csail.mit.edu/models_places365/"
PLACES365_RESNET18 = WeightFile(
    key="places365/resnet18",
    description="Places365 scene classifier, ResNet-18 (CSAIL, ~45 MB)",
    filename="resnet18_places365.pth.tar",
    source=f"url:{PLACES365_URL}resnet18_places365.pth.tar",
    licence="MIT (CSAILVision/places365)",
    download_target="places365-resnet18",
    optional=True,
)
PLACES365_RESNET50 = WeightFile(
    key="places365/resnet50",
    description="Places365 scene classifier, ResNet-50 (CSAIL, ~100 MB)",
    filename="resnet50_places365.pth.tar",
    source=f"url:{PLACES365_URL}resnet50_places365.pth.tar",
    licence="MIT (CSAILVision/places365)",
    download_target="places365-resnet50",
    optional=True,
)

def torch_hub_checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, worked out without importing torch when it is not loaded yet.

    Same rule as torch: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch; then hub/.
    """
    hub = sys.modules.get("torch.hub")
    if hub is not None:  # already loaded: respects torch.hub.set_dir() (never imported from here)
        return Path(hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


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
    if kind == "asset":
        return [REPO_ROOT / where]
    if kind == "local":
        folder = Path(where)
        if folder.is_absolute():
            return [folder / name for name in names]
        found = []
        if settings.weights_dir is not None:
            found += [settings.weights_dir / name for name in names]
            found += [settings.weights_dir / folder / name for name in names]
        return found + [REPO_ROOT / "assets" / folder / name for name in names]
    if settings.weights_dir is not None:
        # A flat copy (weights_dir/<file>) or one folder per source (weights_dir/<repo name or package>/<file>).
        # Generic names (model.safetensors: many repos use it) and files with companions only count in their
        # own folder, so one model's file is never taken for another's.
        source_folder = where.split("/")[-1] if kind in ("hf-hub", "url") else where.split("/")[0]
        for name in names:
            if not weight.companions and name not in GENERIC_FILENAMES:
                paths.append(settings.weights_dir / name)
            paths.append(settings.weights_dir / source_folder / name)
    if kind == "pypi":
        package, _, inner = where.partition("/")
        root = _package_dir(package)
        if root is not None:
            paths.append(root / inner)
    elif kind == "hf-hub":
        paths.extend(_hf_cached_paths(where, names, settings, weight.revision))
    elif kind == "url":
        paths.extend(torch_hub_checkpoints_dir() / name for name in names)
    return paths


def hf_hub_cache_dir() -> Path:
    """The default Hugging Face hub cache, as ``huggingface_hub`` resolves it (HF_HUB_CACHE, the older
    HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(home).expanduser() / "hub"


def _hf_cached_file(cache_dir: Path, repo_id: str, name: str, revision: str | None) -> Path | None:
    """A file of a model repo in a hub cache, read from the cache's documented layout
    (``models--ORG--NAME/refs/REV`` -> ``snapshots/COMMIT/FILE``), as ``try_to_load_from_cache`` does.

    Not through ``huggingface_hub``: importing its download module (httpx ...) costs about a second, and
    ``python -m geoapp models`` looks weights up on every call (tests/models/test_weights_lookup.py checks
    both agree)."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    revision = revision or "main"
    try:
        ref = repo / "refs" / revision
        if ref.is_file():
            revision = ref.read_text(encoding="utf-8").strip()
        candidate = repo / "snapshots" / revision / name
    except (OSError, UnicodeDecodeError, ValueError):  # an unreadable cache counts as no copy
        return None
    return candidate if candidate.is_file() else None


def _hf_cached_paths(repo_id: str, names: tuple[str, ...], settings: Settings,
                     revision: str | None = None) -> list[Path]:
    """Paths of files already in a Hugging Face cache (local lookup only, never a request)."""
    cache_dirs = [settings.weights_dir] if settings.weights_dir is not None else []
    cache_dirs.append(hf_hub_cache_dir())
    found = [_hf_cached_file(Path(cache_dir), repo_id, name, revision) for cache_dir in cache_dirs for name in names]
    return [path for path in found if path is not None]


def find(weight: WeightFile, settings: Settings | None = None) -> Path | None:
    """First existing local copy of ``weight`` (with its companions beside it), or None."""
    for path in candidate_paths(weight, settings):
        if path.is_file() and all((path.parent / name).is_file() for name in weight.companions):
            return path
    return None


def require(weight: WeightFile, settings: Settings | None = None) -> Path:
    """Local path of ``weight``; raises :class:`WeightsMissingError` (instantly) when absent."""
    path = find(weight, settings)
    if path is not None:
        return path
    looked = [str(p) for p in candidate_paths(weight, settings)] or [_empty_lookup_note(weight)]
    raise WeightsMissingError(
        f"Missing weights: {weight.filename} — {weight.description}, from the {weight.origin}. "
        f"To fix: {weight.fix_hint()}. Looked in: {', '.join(looked)}."
    )


def _empty_lookup_note(weight: WeightFile) -> str:
    if weight.source.startswith("hf-hub:"):
        return f"the Hugging Face cache {hf_hub_cache_dir()} (no copy of {weight.source[len('hf-hub:'):]})"
    return "(no candidate folder: package not installed)"


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
            "optional": self.weight.optional,
        }


def status(weights, *, checksums: bool = True, settings: Settings | None = None) -> list[WeightStatus]:
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
    if kind == "url":
        return _download_url(weight, where, settings)
    if kind != "hf-hub":
        raise WeightsMissingError(f"{weight.filename} is not downloadable: {weight.fix_hint()}.")
    from huggingface_hub import hf_hub_download

    cache_dir = str(settings.weights_dir) if settings.weights_dir else None
    for name in weight.companions:  # small files first: a failed big download leaves no orphan config
        hf_hub_download(repo_id=where, filename=name, cache_dir=cache_dir, revision=weight.revision)
    return Path(hf_hub_download(repo_id=where, filename=weight.filename, cache_dir=cache_dir,
                                revision=weight.revision))


def _download_url(weight: WeightFile, url: str, settings: Settings) -> Path:
    """Plain file download (progress bar, digest check, temp file then rename) into the weights dir or
    torch hub's checkpoints folder. Only on request (`weights download TARGET`)."""
    import tempfile
    import urllib.request

    from tqdm import tqdm

    folder = settings.weights_dir if settings.weights_dir is not None else torch_hub_checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / weight.filename
    request = urllib.request.Request(url, headers={"User-Agent": "geoapp (weights download)"})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (https/http URLs we list)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{weight.filename}.", delete=False) as handle, \
                tqdm(total=total, unit="B", unit_scale=True, desc=weight.filename, file=sys.stderr) as bar:
            try:
                while block := response.read(1 << 20):
                    handle.write(block)
                    digest.update(block)
                    bar.update(len(block))
            except BaseException:
                Path(handle.name).unlink(missing_ok=True)
                raise
    if weight.sha256 and digest.hexdigest() != weight.sha256:
        Path(handle.name).unlink(missing_ok=True)
        raise WeightsMissingError(f"{url} did not match the published SHA-256 of {weight.filename}; nothing was kept")
    move_into_place(handle.name, target, durable=True)
    return target
