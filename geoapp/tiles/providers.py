"""Online tile providers: URL, zoom range and attribution from ``xyzservices``; licence terms from us.

``xyzservices`` is a maintained catalogue of tile services but says nothing about storing tiles,
so each provider we name carries our reading of its terms (:class:`ProviderTerms`). A provider
known only to xyzservices, or a raw ``{z}/{x}/{y}`` URL template, gets the cautious default:
tiles are shown but never stored (no disk cache, ``tiles fetch`` refuses).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlparse

from geoapp.tiles.base import SourceInfo, TileSourceError

UNKNOWN_TERMS = "unknown: check the provider's terms; geoapp does not store these tiles"


@dataclass(frozen=True)
class ProviderTerms:
    """Our entry for a provider: its xyzservices name, licence, and whether tiles may be stored."""

    key: str  # the name users type
    xyz_name: str  # xyzservices.providers.query_name(...)
    title: str
    licence: str
    caching_allowed: bool
    image_format: str = "jpeg"


PROVIDERS: dict[str, ProviderTerms] = {p.key: p for p in (
    ProviderTerms("gibs-bluemarble", "NASAGIBS.BlueMarble", "NASA GIBS Blue Marble NG (to z8)",
                  "NASA GIBS: no restrictions on reuse, credit NASA (public domain)", True),
    ProviderTerms("gibs-modis", "NASAGIBS.ModisTerraTrueColorCR", "NASA GIBS MODIS Terra true colour (to z9)",
                  "NASA GIBS: no restrictions on reuse, credit NASA (public domain)", True),
    ProviderTerms("gibs-viirs", "NASAGIBS.ViirsTrueColorCR", "NASA GIBS VIIRS true colour (to z9)",
                  "NASA GIBS: no restrictions on reuse, credit NASA (public domain)", True),
    ProviderTerms("usgs-imagery", "USGS.USImagery", "USGS National Map imagery (USA, high zoom)",
                  "USGS: public domain (credit USGS)", True),
    ProviderTerms("esri-imagery", "Esri.WorldImagery", "Esri World Imagery (to z19+)",
                  "Esri terms of use: attribution required; storing tiles for offline use is not permitted", False),
)}


def _xyz_provider(name: str):
    import xyzservices.providers as xyz

    try:
        return xyz.query_name(name)
    except ValueError:
        return None


def _template_info(name: str, url: str, *, title: str, attribution: str, licence: str, caching: bool,
                   min_zoom: int, max_zoom: int, image_format: str) -> SourceInfo:
    return SourceInfo(name=name, title=title, min_zoom=min_zoom, max_zoom=max_zoom, tile_size=256,
                      attribution=attribution, licence=licence, caching_allowed=caching, online=True,
                      image_format=image_format)


@dataclass(frozen=True)
class OnlineProvider:
    """A resolved online source: the URL template (``{z}``, ``{x}``, ``{y}``) and its info."""

    url: str
    info: SourceInfo

    @property
    def host(self) -> str:
        return urlparse(self.url).netloc or self.url


def is_url_template(text: str) -> bool:
    return text.startswith(("http://", "https://")) and all(f"{{{k}}}" in text for k in "zxy")


def check_https(url: str, name: str) -> None:
    """Tiles travel over https only (plain http shows everyone on the network which area is looked at);
    http is accepted for a tile server on this machine."""
    parts = urlparse(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        return
    raise TileSourceError(f"{name}: tile URLs must start with https:// (plain {parts.scheme or 'non-https'} "
                          "would show anyone on the network which area you look at); http:// is accepted only "
                          "for a tile server on this machine (127.0.0.1, localhost)")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_provider(name: str) -> OnlineProvider:
    """A provider key (``gibs-bluemarble``), an xyzservices name (``Esri.WorldImagery``) or an https URL template."""
    if is_url_template(name):
        check_https(name, "the URL template")
        host = urlparse(name).netloc
        return OnlineProvider(name, _template_info(name, name, title=f"Tiles from {host}", attribution=host,
                                                   licence=UNKNOWN_TERMS, caching=False, min_zoom=0, max_zoom=22,
                                                   image_format="png"))
    terms = PROVIDERS.get(name.lower())
    provider = _xyz_provider(terms.xyz_name if terms else name)
    if provider is None:
        raise TileSourceError(f"unknown tile source {name!r}: use 'offline', a .pmtiles/.mbtiles file, one of "
                              f"{', '.join(PROVIDERS)}, an xyzservices name (e.g. 'USGS.USImagery') or an "
                              "https://…/{z}/{x}/{y}… URL template")
    if provider.get("crs", "EPSG:3857") != "EPSG:3857":
        raise TileSourceError(f"{name} is not in Web Mercator ({provider['crs']}); choose a EPSG:3857 layer")
    if provider.requires_token():
        raise TileSourceError(f"{name} needs an API key; geoapp uses keyless providers only")
    url = provider.build_url(scale_factor="")
    check_https(url, name)
    fmt = str(provider.get("format") or ("png" if url.lower().endswith(".png") else "jpeg"))
    return OnlineProvider(url, _template_info(
        terms.key if terms else provider.name, url, title=terms.title if terms else provider.name,
        attribution=provider.get("attribution", ""), licence=terms.licence if terms else UNKNOWN_TERMS,
        caching=terms.caching_allowed if terms else False, min_zoom=int(provider.get("min_zoom", 0)),
        max_zoom=int(provider.get("max_zoom", 19)), image_format="jpeg" if fmt in ("jpg", "jpeg") else fmt))
