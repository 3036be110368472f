"""Name -> tile source, and where the offline pyramid lives.

Names users can give (CLI ``--source``, the app's Map settings):

- ``offline`` (default): the Blue Marble pyramid at :func:`default_pyramid_path`;
  ``offline:relief`` / ``offline:etopo`` the other layers;
- a path to a ``.pmtiles`` or ``.mbtiles`` file;
- a provider key (``gibs-bluemarble``, ``gibs-modis``, ``gibs-viirs``, ``usgs-imagery``,
  ``esri-imagery``), any ``xyzservices`` name (``OpenStreetMap.Mapnik``), or an
  ``https://…/{z}/{x}/{y}…`` URL template — online, refused unless online tiles are allowed.

The offline pyramids live under ``$GEOAPP_CACHE_DIR/tiles/`` (default ``~/.cache/geoapp/tiles``),
named ``offline-<layer>.pmtiles``; online tiles whose licence allows storing are cached in
``$GEOAPP_CACHE_DIR/tiles/online-cache/<provider>/``. Delete either at any time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from geoapp.settings import Settings, get_settings
from geoapp.tiles.archives import ARCHIVE_SUFFIXES, open_archive
from geoapp.tiles.base import SourceInfo, TileSource, TileSourceError
from geoapp.tiles.online import ClientPolicy, OnlineTileSource
from geoapp.tiles.providers import PROVIDERS, resolve_provider
from geoapp.tiles.pyramid import DEFAULT_LAYER, LAYERS, build_pyramid, layer

OFFLINE = "offline"
AUTO_MAX_ZOOM = 4  # what the app / `tiles show` build on first need: 341 tiles, ~15 s on 2 cores

_build_lock = threading.Lock()


def tiles_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).cache_dir / "tiles"


def default_pyramid_path(layer_key: str = DEFAULT_LAYER, settings: Settings | None = None) -> Path:
    """Where ``tiles build-offline`` writes by default and where ``offline`` is read from."""
    layer(layer_key)  # validates the name
    return tiles_dir(settings) / f"offline-{layer_key}.pmtiles"


def offline_layer(name: str | None) -> str | None:
    """The layer key when ``name`` means an offline pyramid (``None``, ``offline``, ``offline:relief``)."""
    if name is None or name == "" or name == OFFLINE:
        return DEFAULT_LAYER
    if name.startswith(OFFLINE + ":"):
        return layer(name.split(":", 1)[1]).key
    return None


def ensure_offline_pyramid(layer_key: str = DEFAULT_LAYER, *, settings: Settings | None = None,
                           max_zoom: int = AUTO_MAX_ZOOM, progress: Callable[[int, int], None] | None = None,
                           show_bar: bool = False) -> Path:
    """The pyramid's path, built (zoom 0..max_zoom) when none exists, or deepened when the one there stops short of
    ``max_zoom`` (its tiles are copied, only the new levels rendered; the file is replaced atomically).

    One build at a time per process; a concurrent caller waits and then finds the file deep enough.
    """
    path = default_pyramid_path(layer_key, settings)
    built = _built_max_zoom(path)
    if built is not None and built >= max_zoom:
        return path
    with _build_lock:
        built = _built_max_zoom(path)
        if built is None or built < max_zoom:
            reuse = open_archive(path) if built is not None else None
            try:
                build_pyramid(path, layer_key, max_zoom=max_zoom, progress=progress, show_bar=show_bar, reuse=reuse)
            finally:
                if reuse is not None:
                    reuse.close()
    return path


def built_max_zoom(layer_key: str = DEFAULT_LAYER, settings: Settings | None = None) -> int | None:
    """The deepest zoom of the built offline pyramid of a layer (None: not built, or unreadable)."""
    return _built_max_zoom(default_pyramid_path(layer_key, settings))


def is_online_name(name: str | None) -> bool:
    if offline_layer(name) is not None:
        return False
    return not (name.lower().endswith(ARCHIVE_SUFFIXES) or Path(name).expanduser().is_file())


def open_source(name: str | None = None, *, allow_online: bool = False, settings: Settings | None = None,
                build_missing: bool = False, notice: Callable[[str], None] | None = None,
                policy: ClientPolicy | None = None) -> TileSource:
    """Open a tile source by name (see the module docstring).

    ``build_missing``: build a small offline pyramid when the requested one does not exist yet,
    instead of failing with the command that builds it.
    """
    settings = settings or get_settings()
    layer_key = offline_layer(name)
    if layer_key is not None:
        path = default_pyramid_path(layer_key, settings)
        if not path.is_file():
            if not build_missing:
                raise TileSourceError(f"no offline pyramid at {path} yet. Build it with `python -m geoapp tiles "
                                      f"build-offline --layer {layer_key}` (zoom 0-6, a few minutes)")
            if notice is not None:
                notice(f"Building the offline {layer_key} pyramid (zoom 0-{AUTO_MAX_ZOOM}) at {path}, once …")
            ensure_offline_pyramid(layer_key, settings=settings)
        return open_archive(path)
    name = str(name)  # offline_layer() took care of None
    if name.lower().endswith(ARCHIVE_SUFFIXES) or Path(name).expanduser().is_file():
        return open_archive(name)
    provider = resolve_provider(name)
    return OnlineTileSource(provider, allow_network=allow_online, cache_dir=tiles_dir(settings) / "online-cache",
                            policy=policy, notice=notice)


def _built_max_zoom(path: Path) -> int | None:
    """The deepest zoom of a built pyramid; None when there is none (or it cannot be read)."""
    if not path.is_file():
        return None
    try:
        with open_archive(path) as archive:
            return archive.info.max_zoom
    except TileSourceError:
        return None


def catalogue(settings: Settings | None = None) -> list[tuple[str, SourceInfo]]:
    """Every named source (offline layers, then online providers) with its info, for menus and docs."""
    entries: list[tuple[str, SourceInfo]] = []
    for key, spec in LAYERS.items():
        name = OFFLINE if key == DEFAULT_LAYER else f"{OFFLINE}:{key}"
        path = default_pyramid_path(key, settings)
        built = _built_max_zoom(path)
        entries.append((name, SourceInfo(name=name, title=spec.title + ("" if built is not None else " — not built yet"),
                                         max_zoom=6 if built is None else built, attribution=spec.attribution,
                                         licence=spec.licence, caching_allowed=True, online=False)))
    for key in PROVIDERS:
        entries.append((key, resolve_provider(key).info))
    return entries
