"""The folder of map assets the app serves itself (Leaflet, heatmap plugin, offline basemap).

Map pages load every script and stylesheet from the app (never from a CDN), so one folder
holds them all and is the only folder the web server is allowed to serve for maps:

- Leaflet, vendored in ``assets/offline-map/leaflet`` (see its README for provenance);
- the heatmap plugin from the installed ``folium`` package;
- ``countries.js``: Natural Earth country outlines (simplified) as ``window.GEOAPP_COUNTRIES``,
  generated once from :mod:`geoapp.geo.countries` and cached.

The folder lives under ``$GEOAPP_CACHE_DIR/map-assets/<version>``; it is rebuilt only when a
file is missing, and files are written atomically so concurrent app processes sharing a cache
never serve half a file.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

from geoapp.ui.maps.elements import BASEMAP_GLOBAL
from geoapp.ui.maps.render import BASEMAP_JS, HEAT_JS, LEAFLET_CSS, LEAFLET_JS
from geoapp.fileio import atomic_write
from geoapp.settings import get_settings

LEAFLET_VERSION = "1.9.4"
BASEMAP_SIMPLIFY_DEG = 0.05  # ~5 km: plenty for a world/country view, ~1 MB of GeoJSON
ASSET_VERSION = f"leaflet-{LEAFLET_VERSION}-basemap-{BASEMAP_SIMPLIFY_DEG}-v1"
VENDORED_DIR = Path(__file__).resolve().parents[2] / "assets" / "offline-map" / "leaflet"

_LOCK = threading.Lock()


class MapAssetsError(RuntimeError):
    """The offline map assets cannot be prepared (a file is missing from the checkout)."""


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _without_source_map(data: bytes) -> bytes:
    """Drop the ``sourceMappingURL`` comment: the .map file is not shipped (no pointless 404)."""
    lines = data.split(b"\n")
    return b"\n".join(line for line in lines if not line.lstrip().startswith((b"//# sourceMappingURL", b"/*# sourceMappingURL")))


def _folium_heat_js() -> Path:
    spec = importlib.util.find_spec("folium")
    if spec is None or not spec.submodule_search_locations:
        raise MapAssetsError("the folium package is not installed (pip install -r requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / "leaflet_heat.min.js"
    if not path.is_file():
        raise MapAssetsError(f"folium's heatmap plugin is missing: {path}")
    return path


def countries_geojson(simplify_deg: float = BASEMAP_SIMPLIFY_DEG) -> dict:
    """World country outlines as a GeoJSON FeatureCollection (lon/lat, simplified)."""
    import shapely

    from geoapp.geo.countries import get_country_index

    features = []
    for country in get_country_index().countries:
        geometry = shapely.simplify(country.geometry, simplify_deg, preserve_topology=True)
        if geometry.is_empty:
            continue
        features.append({
            "type": "Feature",
            "properties": {"name": country.name, "code": country.code},
            "geometry": json.loads(shapely.to_geojson(shapely.set_precision(geometry, 0.001))),
        })
    return {"type": "FeatureCollection", "features": features}


def _write_basemap(path: Path) -> None:
    payload = json.dumps(countries_geojson(), separators=(",", ":"))
    _atomic_write(path, f"window[{json.dumps(BASEMAP_GLOBAL)}] = {payload};\n".encode())


def map_asset_dir(cache_dir: Path | None = None) -> Path:
    """The ready-to-serve folder (built on first call, ~2 s for the basemap, then reused)."""
    root = (cache_dir or get_settings().cache_dir) / "map-assets" / ASSET_VERSION
    with _LOCK:
        if not VENDORED_DIR.is_dir():
            raise MapAssetsError(f"the vendored Leaflet files are missing: {VENDORED_DIR}")
        for name in (LEAFLET_JS, LEAFLET_CSS):
            target = root / name
            if not target.is_file():
                _atomic_write(target, _without_source_map((VENDORED_DIR / name).read_bytes()))
        for image in sorted((VENDORED_DIR / "images").glob("*.png")):
            target = root / "images" / image.name
            if not target.is_file():
                _atomic_write(target, image.read_bytes())
        if not (root / HEAT_JS).is_file():
            _atomic_write(root / HEAT_JS, _folium_heat_js().read_bytes())
        if not (root / "LICENSE-leaflet.txt").is_file():
            _atomic_write(root / "LICENSE-leaflet.txt", (VENDORED_DIR / "LICENSE").read_bytes())
        if not (root / BASEMAP_JS).is_file():
            _write_basemap(root / BASEMAP_JS)
    return root
