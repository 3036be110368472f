"""Map-tile locator: photo -> photo embedding -> beam search over map tiles -> Prediction (+ evidence).

* Candidates: the tiles scored at the last zoom level; probabilities are a softmax of their cosine
  similarities at that level's logit scale (the temperature learnt with the level's encoder). The
  centres of the distinct tiles become the candidates (merge radius at most half a final tile, so
  neighbouring tiles stay distinct).
* Region prior: the search starts from the tiles covering the region and every level keeps only
  tiles overlapping it; a final tile whose centre falls outside is placed at a point of its part
  inside the region.
* Levels deeper than the tile source has are left out (the search ends at the deepest zoom it can
  read): a **warning** on every result, on the CLI's stderr and in every record says so. The offline
  pyramid is built, or deepened, to the model's deepest zoom (up to 6) on first use, so the shipped
  model searches all its levels.
* GeoCLIP seeding (``seed_geoclip=N``): the tiles holding GeoCLIP's top N candidates are kept in
  addition to the k best at every level (k + N expanded, the paper's future work). Skipped, with a
  warning on the result, when GeoCLIP cannot run here.
* Evidence: :class:`~.evidence.SearchPath` (also a map layer) and :class:`~.evidence.TileThumbnails`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import torch
import torch.nn.functional as F

from geoapp.families.base import CandidateSpace, Family, FamilyIdentity, PredictOptions
from geoapp.families.maptiles.embedding import TileEmbedder
from geoapp.families.maptiles.evidence import FinalTile, SearchPath, TileThumbnails
from geoapp.families.maptiles.model import (
    CheckpointMeta,
    MapTileModel,
    model_from_checkpoint,
    preset,
    read_checkpoint,
)
from geoapp.families.maptiles.search import SearchResult, beam_search, tile_boxes
from geoapp.geo.distance import haversine_km
from geoapp.geo.regions import Region, RegionError, parse_region
from geoapp.geo.tiles import TileError, tile_center, tiles_covering
from geoapp.imaging import LoadedImage, load_image
from geoapp.models.preprocess import centre_crop_tensor, decode_side
from geoapp.results.prediction import GradCamResult, Prediction, build_prediction
from geoapp.runtime.batch import PendingImage, auto_merge_km, failed_record, resolve_device, run_batched, source_name
from geoapp.runtime.engines import ImageTower, TorchTower, TowerSource
from geoapp.tiles.base import TileSource, TileSourceError

log = logging.getLogger(__name__)
THUMBNAILS = 4


class MapTileLocator(Family):
    """Beam search over map tiles behind the family contract. Build with :func:`load`."""

    def __init__(self, model: MapTileModel, meta: CheckpointMeta, source: TileSource, embedder: TileEmbedder,
                 device: torch.device, *, weights: str, sha256: str, random: bool, notes: list[str]) -> None:
        from geoapp.families.maptiles import SPEC

        self.spec = SPEC
        self.model = model.to(device).eval()
        self.meta = meta
        self.source = source
        self.embedder = embedder
        self.device = device
        self.weights = weights
        self.sha256 = sha256
        self._random = random
        self.notes = notes
        self.zooms = tuple(z for z in model.zooms if z <= source.info.max_zoom)
        if not self.zooms:
            raise TileSourceError(f"the tile source {source.info.name!r} goes to zoom {source.info.max_zoom}, but "
                                  f"this model's first level is zoom {model.zooms[0]}: build a deeper pyramid "
                                  f"(`python -m geoapp tiles build-offline --max-zoom {model.zooms[-1]}`)")
        self.truncation = None if self.zooms == model.zooms else truncation_warning(source, self.zooms, model.zooms)
        if self.truncation:
            self.notes.append(self.truncation)
        self._geoclip = None
        prep = model.config.preprocess()
        # The frozen photo encoder; load() swaps in ONNX Runtime / OpenVINO when asked (geoapp.runtime). The map
        # encoders stay on torch: their tile embeddings are computed once and cached.
        self.tower: ImageTower = TorchTower(TowerSource(self.spec.key, _PhotoEncoder(self.model).eval(),
                                                        prep.image_size, lambda image: centre_crop_tensor(image, prep)))

    @property
    def load_warnings(self) -> list[str]:
        """What every result of this instance must say (the CLI prints it when the model loads)."""
        return [self.truncation] if self.truncation else []

    # ------------------------------------------------------------------ identity
    def describe(self) -> FamilyIdentity:
        demo = self.meta.crossview_demo or self._random
        return FamilyIdentity(
            family=self.spec.key, label=self.spec.label, weights=self.weights, weights_sha256=self.sha256,
            device=str(self.device), random_weights=self._random,
            candidates=f"tiles of {self.source.info.title}, zooms {', '.join(map(str, self.zooms))} "
                       f"(beam search, 16 children per kept tile)",
            input_domain=self.spec.input_domain if demo else "ground-level photo",
            caveat=self.spec.caveat if demo else None, runtime=self.tower.runtime, precision=self.tower.precision,
            runtime_note=self.tower.note,
            details={"preset": self.model.config.name, "zooms": list(self.zooms), "tile_source": self.source.info.name,
                     "notes": list(self.notes), "training": dict(self.meta.training)})

    # ------------------------------------------------------------------ candidates
    def _region(self, region: Any) -> Region | None:
        if region is None:
            return None
        return region if isinstance(region, Region) else parse_region(region)

    def _start(self, region: Region | None) -> np.ndarray | None:
        if region is None:
            return None
        try:
            tiles = tiles_covering(region, self.zooms[0])
        except TileError as error:
            raise RegionError(f"{region.label}: {error}") from error
        if len(tiles) == 0:
            raise RegionError(f"no map tile of zoom {self.zooms[0]} overlaps {region.label}: choose a larger region")
        return tiles

    def restrict(self, region: Any) -> CandidateSpace:
        parsed = self._region(region)
        start = self._start(parsed)
        first = 4 ** self.zooms[0] if start is None else len(start)
        where = f" overlapping {parsed.label}" if parsed is not None else ""
        return CandidateSpace(parsed, int(first), f"{first:,} tiles of zoom {self.zooms[0]}{where} to start the "
                                                  f"beam search (zooms {', '.join(map(str, self.zooms))})")

    @staticmethod
    def _inside(region: Region):
        geometry = region.geometry
        shapely.prepare(geometry)

        def inside(tiles: np.ndarray) -> np.ndarray:
            boxes = shapely.box(*tile_boxes(tiles).T)
            return shapely.intersects(geometry, boxes) & ~shapely.touches(geometry, boxes)

        return inside

    # ------------------------------------------------------------------ images
    def load_image(self, image: Any, tencrop: bool = False) -> LoadedImage:
        return load_image(image, min_side=decode_side(self.model.config.preprocess(), False))

    @torch.inference_mode()
    def photo_embeddings(self, pixels: torch.Tensor) -> np.ndarray:
        """Unit photo embeddings [B, D] (float32)."""
        raw = self.tower(pixels) if self.tower.runtime != "torch" else self.model.encode_photo(pixels.to(self.device))
        return F.normalize(raw.float(), dim=-1).cpu().numpy()

    def search(self, photo: np.ndarray, k: int, region: Region | None = None, seeds: np.ndarray | None = None
               ) -> SearchResult:
        """One photo embedding's beam search (cached tile embeddings)."""
        return beam_search(photo, self.zooms, self.embedder, k, start=self._start(region),
                           inside=self._inside(region) if region is not None else None, seeds=seeds)

    def _predict(self, images: list, options: PredictOptions, on_error: str, progress) -> list[Prediction]:
        region = self._region(options.region)
        if region is not None:
            self._start(region)  # a region with no tile fails before any image is read
        k = int(options.extras.get("beam_k") or 16)
        seed_count = int(options.extras.get("seed_geoclip") or 0)
        final_zoom = self.zooms[-1]
        half_tile_km = float(haversine_km(*tile_center(final_zoom, 0, (1 << final_zoom) // 2),
                                          *tile_center(final_zoom, 1, (1 << final_zoom) // 2))) / 2
        merge = options.merge_km if options.merge_km is not None else min(auto_merge_km(region), half_tile_km)
        parameters = {"top_k": int(options.top_k), "beam_k": k, "region": region.key if region else None,
                      "merge_km": merge, "zooms": list(self.zooms), "tile_source": self.source.info.name,
                      "seed_geoclip": seed_count}
        preprocess = self.model.config.preprocess()

        def prepare(image) -> tuple[LoadedImage, torch.Tensor]:
            loaded = self.load_image(image)
            return loaded, centre_crop_tensor(loaded.image, preprocess)

        def predict_pending(pending: list[PendingImage]) -> list[Prediction]:
            start = time.perf_counter()
            photos = self.photo_embeddings(torch.cat([p.tensors for p in pending]))
            forward_ms = (time.perf_counter() - start) * 1000 / len(pending)
            seeds, seed_warning = self._seeds([p.image for p in pending], seed_count, region)
            results = []
            for row, item in enumerate(pending):
                begin = time.perf_counter()
                result = self.search(photos[row], k, region, None if seeds is None else seeds[row])
                search_ms = (time.perf_counter() - begin) * 1000
                prediction = self._prediction(item, result, region, int(options.top_k), merge, k)
                prediction.parameters = {**parameters, "tiles_scored": result.tiles_scored,
                                         "seeded_tiles": int(sum(s.seeded for s in result.steps))}
                if seed_warning:
                    prediction.warnings.append(seed_warning)
                prediction.warnings.extend(w for w in self.load_warnings if w not in prediction.warnings)
                prediction.timings_ms = {"load": item.load_ms, "forward": forward_ms, "search": search_ms}
                results.append(prediction)
            return results

        return run_batched(images, prepare, predict_pending,
                           lambda image, message: failed_record(image, message, parameters),
                           on_error, options.batch_size, progress)

    def _prediction(self, item: PendingImage, result: SearchResult, region: Region | None, top_k: int, merge: float,
                    k: int) -> Prediction:
        final = result.final
        scale = float(self.model.logit_scale(final.zoom).detach())
        logits = scale * final.scores.astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        lat, lon = tile_center(final.tiles[:, 0], final.tiles[:, 1], final.tiles[:, 2])
        lat, lon = np.asarray(lat, np.float64).copy(), np.asarray(lon, np.float64).copy()
        if region is not None:
            self._move_inside(region, final.tiles, lat, lon)
        prediction = build_prediction(source_name(item.image, item.loaded), lat, lon, probs, top_k=top_k,
                                      merge_km=merge)
        prediction.image = item.loaded.to_dict()
        prediction.region = region
        order = np.argsort(-probs, kind="stable")[:THUMBNAILS]
        thumbs = [FinalTile(rank, int(final.tiles[i, 0]), int(final.tiles[i, 1]), int(final.tiles[i, 2]),
                            float(final.scores[i]), float(probs[i]), self._tile_image(final.tiles[i]))
                  for rank, i in enumerate(order, start=1)]
        prediction.evidence = [SearchPath.from_result(result, k),
                               TileThumbnails(thumbs, self.source.info.attribution)]
        return prediction

    @staticmethod
    def _move_inside(region: Region, tiles: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
        """Tiles overlap the region, but a centre may not: use a point of the tile's part inside it."""
        outside = ~np.asarray(region.contains(lat, lon), dtype=bool)
        for index in np.flatnonzero(outside):
            part = region.geometry.intersection(shapely.box(*tile_boxes(tiles[index])[0]))
            if not part.is_empty:
                point = part.representative_point()
                lat[index], lon[index] = point.y, point.x

    def _tile_image(self, tile: np.ndarray):
        try:
            return self.source.tile(int(tile[0]), int(tile[1]), int(tile[2])).image()
        except TileSourceError:
            return None

    def _seeds(self, images: list, count: int, region: Region | None) -> tuple[list[np.ndarray] | None, str | None]:
        """GeoCLIP's top ``count`` candidates per image as [count, 2] seed points (None when off/unavailable)."""
        if count <= 0:
            return None, None
        try:
            if self._geoclip is None:
                from geoapp.families.registry import LoadOptions, get

                self._geoclip = get("geoclip").load(LoadOptions(device=str(self.device)))
            found = self._geoclip.predict_batch(images, top_k=count, region=region)
        except (FileNotFoundError, ValueError, RuntimeError) as error:
            return None, f"GeoCLIP-seeded search skipped: GeoCLIP cannot run here ({error})"
        return [np.array([[c.lat, c.lon] for c in p.candidates], np.float64).reshape(-1, 2) for p in found], None

    # ------------------------------------------------------------------ Grad-CAM
    def explain(self, image: Any, lat: float, lon: float) -> dict[str, GradCamResult]:
        """Grad-CAM of the photo encoder towards the embedding of the last-level tile holding (lat, lon)."""
        from geoapp.geo.tiles import latlon_to_tile
        from geoapp.runtime.cam import (EmbeddingSimilarityTarget, cam_result, compute_cam, gradcam_note,
                                        vit_reshape_transform)

        zoom = self.zooms[-1]
        x, y = (int(v) for v in latlon_to_tile(lat, lon, zoom))
        vectors, available = self.embedder(zoom, np.array([[zoom, x, y]]))
        if not available[0]:
            raise TileSourceError(f"the tile source has no tile {zoom}/{x}/{y} to explain towards")
        cfg = self.model.config.preprocess()
        pixels = centre_crop_tensor(self.load_image(image).image, cfg).to(self.device)
        tower = self.model.tower
        maps = compute_cam(_PhotoEncoder(self.model).eval(), [tower.transformer.resblocks[-1].ln_1], pixels,
                           [EmbeddingSimilarityTarget(torch.from_numpy(vectors[0]))],
                           vit_reshape_transform(tuple(tower.grid_size)))
        target = f"cosine similarity to the embedding of map tile {zoom}/{x}/{y}" + gradcam_note(self.tower)
        return {"photo": cam_result(maps[0], pixels[0], cfg.mean, cfg.std, target, self._random)}


class _PhotoEncoder(torch.nn.Module):
    def __init__(self, model: MapTileModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_photo(pixels)


def truncation_warning(source: TileSource, searched: tuple[int, ...], levels: tuple[int, ...]) -> str:
    """The warning a search that cannot reach the model's deepest level carries."""
    from geoapp.geo.tiles import tile_bounds

    west, _, east, _ = (float(v) for v in tile_bounds(searched[-1], 0, 0))
    width_km = (east - west) / 360.0 * 40_075
    fix = (f"build it deeper: `python -m geoapp tiles build-offline --max-zoom {levels[-1]}`"
           if source.info.name.startswith("offline") else f"use a tile source that goes to zoom {levels[-1]}")
    return (f"Map-tile search truncated: the tile source {source.info.name!r} stops at zoom {source.info.max_zoom}, "
            f"so the search ends at zoom {searched[-1]} instead of the model's zoom {levels[-1]} (answers are centres "
            f"of tiles about {width_km:,.0f} km wide); {fix}")


# ---------------------------------------------------------------------------------------------- loading
OFFLINE_BUILD_MAX_ZOOM = 6  # deepest zoom built on first use (zoom 0-6: 5 461 tiles, about a minute of one core)


def open_tiles(name: str | None, notes: list[str], deepest: int) -> TileSource:
    """The tile source by name (``synthetic`` / ``synthetic:MAXZOOM`` for tests). The offline pyramid is built when
    missing, or deepened when it stops short of the model's deepest zoom (up to zoom 6), with a progress bar."""
    if name is not None and (name == "synthetic" or name.startswith("synthetic:")):
        from geoapp.families.maptiles.synthetic import SyntheticTileSource

        return SyntheticTileSource(max_zoom=int(name.split(":", 1)[1]) if ":" in name else 8)
    from geoapp.tiles.registry import (
        AUTO_MAX_ZOOM,
        built_max_zoom,
        default_pyramid_path,
        ensure_offline_pyramid,
        offline_layer,
        open_source,
    )

    layer = offline_layer(name)
    if layer is not None:
        zoom = max(AUTO_MAX_ZOOM, min(OFFLINE_BUILD_MAX_ZOOM, deepest))
        built = built_max_zoom(layer)
        if built is None or built < zoom:
            what = "built" if built is None else f"deepened (it stopped at zoom {built})"
            message = f"the offline {layer} pyramid was {what} to zoom 0-{zoom} at {default_pyramid_path(layer)}"
            log.warning("%s …", message)
            ensure_offline_pyramid(layer, max_zoom=zoom, show_bar=True)
            notes.append(message)
    return open_source(name, build_missing=True, notice=notes.append)


def _levels(text: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    if text in (None, ""):
        return default
    if isinstance(text, (list, tuple)):
        return tuple(int(v) for v in text)
    return tuple(int(v) for v in str(text).split(","))


def load(spec, options) -> MapTileLocator:
    """Registry loader.

    * default: the shipped cross-view checkpoint (``assets/maptiles/``), or ``--checkpoint``;
      a checkpoint holding only the levels (the paper's CLIP preset) also needs the ViT-B/32
      backbone (``--backbone-weights PATH`` or ``python -m geoapp weights download vit-b-32``);
    * ``backbone_weights="random"`` without a checkpoint: a random model (extras ``preset``:
      tiny | crossview-small | clip-vit-b32, ``levels``: "1,3,5"; flagged random).

    Extras: ``tiles`` (tile source name, default: the one the checkpoint was trained on, else
    ``offline``), ``cache_dir`` (tile-embedding cache; default ``$GEOAPP_CACHE_DIR/maptiles/embeddings``).
    """
    from geoapp.runtime.request import RuntimeRequest
    from geoapp.runtime.towers import image_tower
    from geoapp.settings import get_settings

    device = resolve_device(options.device)
    extras = dict(options.extras)
    notes: list[str] = []
    if options.random and options.checkpoint is None:
        config = preset(str(extras.get("preset", "crossview-small")))
        torch.manual_seed(0)  # the same random model every time
        model = MapTileModel(config, _levels(extras.get("levels"), (1, 3, 5)))
        meta = CheckpointMeta(preset=config.name, zooms=model.zooms, description="random")
        weights, sha = "random", "random"
    else:
        from geoapp.families.maptiles import CHECKPOINT
        from geoapp.models.weights import require

        path = Path(options.checkpoint) if options.checkpoint is not None else require(CHECKPOINT)
        payload = read_checkpoint(path)
        tower = None if any(k.startswith("tower.") for k in payload["state"]) else _clip_tower(options)
        model, meta = model_from_checkpoint(payload, tower)
        if options.random:
            torch.manual_seed(0)
            model.tower.load_state_dict(MapTileModel(model.config, model.zooms).tower.state_dict())
        weights, sha = f"{meta.preset} map encoders ({path.name})", _sha256(path)
    source = open_tiles(extras.get("tiles") or meta.training.get("tile_source"), notes, max(model.zooms))
    if "cache_dir" in extras:
        cache_dir = None if extras["cache_dir"] is None else Path(extras["cache_dir"])
    else:
        cache_dir = None if weights == "random" else get_settings().cache_dir / "maptiles" / "embeddings"
    embedder = TileEmbedder(model, source, device=device, cache_dir=cache_dir)
    locator = MapTileLocator(model, meta, source, embedder, device, weights=weights, sha256=sha,
                             random=options.random, notes=notes)
    source = dataclasses.replace(locator.tower.source, family=spec.key)  # a variant's own key
    locator.tower = image_tower(source, RuntimeRequest.from_extras(extras), device)
    return locator


def _clip_tower(options) -> torch.nn.Module:
    from geoapp.families.maptiles.model import clip_vit_b32_tower

    return clip_vit_b32_tower("random" if options.random else (options.backbone_weights or "pretrained"))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
