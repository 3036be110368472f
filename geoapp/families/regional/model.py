"""A regional model = a head + the tables it decodes with + the reference collection; one checkpoint file.

Tables (numpy, saved as tensors so the file loads with ``torch.load(weights_only=True)``):

* countries: codes, bounding boxes (S, W, N, E) and the mean training location of each;
* cells (cells / hybrid): mean coordinate, box of the training locations, majority country;
* gallery (retrieval): training locations + a dense grid inside the countries, with their country;
* feature standardisation (mean, std of the training features);
* references: the collection's L2-normalised features (float16), locations, names and thumbnail
  files (beside the checkpoint), for the reference matches shown with every prediction.

:meth:`RegionalModel.decode` turns features into candidates for every method the same way: one
coordinate and probability per anchor (country, cell or gallery point) and the anchor's country.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from geoapp.fileio import atomic_write
from geoapp.families.regional.heads import HeadConfig, RegionalHead, decode_offsets
from geoapp.index import VectorIndex, build_index, choose_spec

FORMAT = "geoapp.regional.v1"
CHECKPOINT_NAME = "model.pt"


@dataclass
class References:
    """The training collection, for reference matches (cosine on the same features)."""

    features: np.ndarray  # [R, D] float16, L2-normalised
    coords: np.ndarray  # [R, 2] float64
    names: list[str]  # file names as given at build time (not full paths: the folder may move)
    thumbnails: list[str]  # thumbnail file names relative to the checkpoint folder ("" = none)

    @classmethod
    def empty(cls, dim: int) -> References:
        return cls(np.zeros((0, dim), np.float16), np.zeros((0, 2)), [], [])

    def __len__(self) -> int:
        return len(self.coords)

    index_kind: str = "auto"  # geoapp.index kind for reference search (auto: exact below 1 M references)

    def index(self) -> VectorIndex:
        """The vector index over the reference features (built on first use; exact = the features as is)."""
        cached = getattr(self, "_index", None)
        if cached is None or cached.size != len(self) or cached.kind != choose_spec(
                len(self), self.features.shape[1], self.index_kind).kind:
            cached = build_index(self.features, choose_spec(len(self), self.features.shape[1], self.index_kind))
            self._index = cached
        return cached

    def nearest(self, features: np.ndarray, k: int, subset: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Indices [B, k] and cosine similarities of the most similar references per row (ties: lower index
        first); ``subset``: only those reference indices (e.g. a region's), never another one."""
        if len(self) == 0 or k <= 0:
            return np.zeros((len(features), 0), np.int64), np.zeros((len(features), 0))
        query = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        k = min(k, len(self) if subset is None else max(1, len(np.unique(subset))))
        similarity, top = self.index().search(query.astype(np.float32), k, subset=subset)
        return top, similarity


@dataclass
class Tables:
    """What a head decodes with (see the module docstring)."""

    countries: list[str]
    country_boxes: np.ndarray  # [C, 4]
    country_anchors: np.ndarray  # [C, 2]
    feature_mean: np.ndarray  # [D]
    feature_std: np.ndarray  # [D]
    cell_coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    cell_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    cell_country: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gallery_coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    gallery_country: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Decoded:
    """Candidates of a batch: one coordinate and probability per anchor."""

    coords: np.ndarray  # [B, M, 2]
    probs: np.ndarray  # [B, M]
    country: np.ndarray  # [M] index into Tables.countries
    anchors: np.ndarray  # [M, 2] fixed position of each anchor (region restriction)


class RegionalModel:
    """Head + tables + references + metadata; ``decode`` works on raw backbone features."""

    def __init__(self, head: RegionalHead, tables: Tables, references: References, meta: dict) -> None:
        self.head = head.eval()
        self.tables = tables
        self.references = references
        self.meta = dict(meta)  # method, backbone, training_domain, metrics, cells ...
        self._gallery_embeddings: torch.Tensor | None = None

    @property
    def kind(self) -> str:
        return self.head.config.kind

    @property
    def method(self) -> str:
        return str(self.meta.get("method", self.kind))

    def anchors(self) -> tuple[np.ndarray, np.ndarray]:
        """Fixed anchor positions [M, 2] and their countries [M]."""
        t = self.tables
        if self.kind in ("classifier", "offset"):
            return t.country_anchors, np.arange(len(t.countries))
        if self.kind in ("cells", "hybrid"):
            return t.cell_coords, t.cell_country
        return t.gallery_coords, t.gallery_country

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.tables.feature_mean, dtype=torch.float32, device=features.device)
        std = torch.as_tensor(self.tables.feature_std, dtype=torch.float32, device=features.device)
        return (features.float() - mean) / std

    @torch.inference_mode()
    def decode(self, features: torch.Tensor) -> Decoded:
        """Raw backbone features [B, D] -> candidates of every anchor."""
        anchors, country = self.anchors()
        out = self.head(self.standardise(features))
        batch = features.shape[0]
        if self.kind == "retrieval":
            if self._gallery_embeddings is None:
                coords = torch.as_tensor(self.tables.gallery_coords, dtype=torch.float32, device=features.device)
                self._gallery_embeddings = self.head.encode_locations(coords)
            logits = self.head.similarity(out["embedding"], self._gallery_embeddings)
        else:
            logits = out["logits"]
        probs = logits.double().softmax(dim=-1).cpu().numpy()
        if self.kind in ("offset", "hybrid"):
            boxes = self.tables.country_boxes if self.kind == "offset" else self.tables.cell_boxes
            coords = decode_offsets(out["offsets"].double().cpu(), torch.as_tensor(boxes, dtype=torch.float64)).numpy()
        else:
            coords = np.broadcast_to(anchors[None], (batch, *anchors.shape))
        return Decoded(coords=np.asarray(coords, np.float64), probs=probs, country=np.asarray(country, np.int64),
                       anchors=np.asarray(anchors, np.float64))

    def to(self, device: torch.device) -> RegionalModel:
        self.head.to(device)
        self._gallery_embeddings = None
        return self


# ---------------------------------------------------------------------------------------------- files
def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def save_model(model: RegionalModel, path: Path) -> str:
    """Write the checkpoint; returns its SHA-256."""
    t, r = model.tables, model.references
    payload = {
        "format": FORMAT,
        "head": model.head.config.to_dict(),
        "state": {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
        "tables": {name: (_tensor(value) if isinstance(value, np.ndarray) else list(value))
                   for name, value in vars(t).items()},
        "references": {"features": _tensor(r.features.astype(np.float16)), "coords": _tensor(r.coords),
                       "names": list(r.names), "thumbnails": list(r.thumbnails)},
        "meta": model.meta,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle), durable=True)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(path: str | Path) -> tuple[RegionalModel, str]:
    """Read a checkpoint written by :func:`save_model` -> (model, SHA-256)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"regional model checkpoint not found: {path}. Build one with "
                                "`python -m training.regional build SOURCE --countries SE,CH --name NAME`")
    data = path.read_bytes()
    import io

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise ValueError(f"{path} is not a readable regional model checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a regional model checkpoint (format {FORMAT})")
    head = RegionalHead(HeadConfig.from_dict(payload["head"]))
    head.load_state_dict(payload["state"])
    tables = Tables(**{name: (value.numpy() if isinstance(value, torch.Tensor) else list(value))
                       for name, value in payload["tables"].items()})
    refs = payload["references"]
    references = References(refs["features"].numpy(), refs["coords"].numpy(), list(refs["names"]),
                            list(refs["thumbnails"]))
    return RegionalModel(head, tables, references, payload.get("meta", {})), hashlib.sha256(data).hexdigest()
