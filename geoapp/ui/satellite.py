"""The Satellite view (Locate: a candidate; Cases: a claim), the tile-source setting, the tile route.

- :class:`SatelliteViews` (no Gradio): open tile sources by name, once, and draw a mosaic around a
  point with its caption. Offline by default; an online source only when online tiles are on.
  When the offline pyramid is missing or shallower than what the app shows and ships (a fresh
  clone), the app builds it in the background as it starts: zoom 0–4 first (~10 s: the first
  Satellite view or map tile waits for it), then down to :data:`STARTUP_MAX_ZOOM` (the Satellite
  view's default zoom and the shipped map-tile model's deepest level; about a minute of one core, in
  a low-priority process of its own so requests stay responsive), so the default view is never an
  enlarged tile once the app is warm.
- :func:`build_tile_source_setting` (Map settings), :func:`build_satellite_controls` /
  :func:`build_satellite_image` (tabs) and the ``wire_*`` helpers connect it to the tabs.
- :func:`tile_routes`: ``GET /geoapp-tiles/offline/{z}/{x}/{y}.jpg`` on the app's own server, which
  the Folium maps use (relative URL) as their offline imagery layer.
"""

from __future__ import annotations

import atexit
import html
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from geoapp.families.maptiles import SHIPPED_ZOOMS
from geoapp.ui.maps.render import OfflineTileLayer
from geoapp.tiles.base import OfflineModeError, TileSource, TileSourceError
from geoapp.tiles.mosaic import mosaic_around
from geoapp.tiles.registry import (
    AUTO_MAX_ZOOM,
    OFFLINE,
    built_max_zoom,
    catalogue,
    default_pyramid_path,
    ensure_offline_pyramid,
    is_online_name,
    open_source,
)
from geoapp.ui.forms import FormError

log = logging.getLogger(__name__)

DEFAULT_ZOOM = 6
# What the start-up build reaches: the Satellite view's default zoom and the shipped map-tile model's last level.
STARTUP_MAX_ZOOM = max(DEFAULT_ZOOM, max(SHIPPED_ZOOMS))
VIEW_SIZE_PX = 512
TILE_ROUTE = "geoapp-tiles/offline/{z}/{x}/{y}.jpg"  # relative to the page: the app's own server


class SatelliteViews:
    """Tile sources opened once per process and the mosaics drawn from them."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[TileSource, float | None]] = {}  # name -> (source, pyramid mtime)
        self._lock = threading.Lock()

    def source(self, name: str | None, online_tiles: bool, notice: Callable[[str], None] | None = None) -> TileSource:
        name = name or OFFLINE
        if is_online_name(name) and not online_tiles:
            raise FormError(f"'{name}' is an online tile source and online tiles are off: tick \"Online map tiles\" "
                            "in Map settings (the tile server will see the area), or choose the offline pyramid.")
        # A rebuilt pyramid (`tiles build-offline` while the app runs) is a new file: reopen it.
        path = default_pyramid_path() if name == OFFLINE else None
        stamp = path.stat().st_mtime if path is not None and path.is_file() else None
        with self._lock:
            source, seen = self._sources.get(name, (None, None))
            if source is None or (path is not None and (stamp is None or stamp != seen)):
                try:
                    source = open_source(name, allow_online=online_tiles, build_missing=True, notice=notice)
                except (TileSourceError, OfflineModeError) as error:
                    raise FormError(str(error)) from error
                if path is not None:
                    stamp = path.stat().st_mtime
                self._sources[name] = (source, stamp)
        return source

    def view(self, lat: float, lon: float, zoom: int, source_name: str | None, online_tiles: bool,
             notice: Callable[[str], None] | None = None):
        """(PIL image, caption Markdown) of the ground around (lat, lon)."""
        source = self.source(source_name, online_tiles, notice)
        try:
            mosaic = mosaic_around(source, lat, lon, int(zoom), size_px=VIEW_SIZE_PX)
        except (TileSourceError, ValueError) as error:
            raise FormError(str(error)) from error
        caption = mosaic.caption()
        if (source_name or OFFLINE) == OFFLINE and int(zoom) > source.info.max_zoom and building_deeper():
            caption += (f" The offline pyramid is being built down to zoom {STARTUP_MAX_ZOOM} in the background "
                        "(about a minute); choose this place again then for sharper tiles.")
        return mosaic.image, caption


_VIEWS = SatelliteViews()


def _gradio_notice(message: str) -> None:
    gr.Info(html.escape(message), duration=None)


def offline_tile_layer() -> OfflineTileLayer:
    """The maps' offline imagery layer: tiles from this app, deepest native zoom of the pyramid."""
    path = default_pyramid_path()
    max_native = AUTO_MAX_ZOOM
    if path.is_file():
        try:
            from geoapp.tiles.archives import open_archive

            with open_archive(path) as archive:
                max_native = archive.info.max_zoom
        except TileSourceError:
            log.warning("the offline pyramid %s cannot be read; rebuild it with `python -m geoapp tiles build-offline`",
                        path)
    from geoapp.tiles.pyramid import LAYERS

    return OfflineTileLayer(TILE_ROUTE, LAYERS["bluemarble"].attribution, max_native)


# ---------------------------------------------------------------------------- widgets
def source_choices() -> list[tuple[str, str]]:
    return [(f"{info.title} — {'ONLINE' if info.online else 'offline'}", name) for name, info in catalogue()]


def sources_table() -> str:
    rows = ["| source | goes online | licence | attribution |", "|---|---|---|---|"]
    for name, info in catalogue():
        rows.append(f"| {html.escape(info.title)} (`{name}`) | {'**yes**' if info.online else 'no'} | "
                    f"{html.escape(info.licence)} | {html.escape(info.attribution)} |")
    return "\n".join(rows)


def build_tile_source_setting() -> gr.Dropdown:
    """The Map settings entry: which tiles the Satellite views use (offline pyramid by default)."""
    dropdown = gr.Dropdown(source_choices(), value=OFFLINE, label="Satellite view source",
                           info="Online sources are used only while online map tiles are on; their server then sees "
                                "the area you look at.", elem_id="geoapp-tile-source")
    with gr.Accordion("Tile sources: licences and attribution", open=False):
        gr.Markdown(sources_table())
    return dropdown


@dataclass(frozen=True)
class SatelliteControls:
    zoom: gr.Slider
    caption: gr.Markdown


def build_satellite_controls() -> SatelliteControls:
    zoom = gr.Slider(0, 12, value=DEFAULT_ZOOM, step=1, label="Satellite view zoom",
                     info="Tiles around the chosen place; beyond the source's deepest zoom they are enlarged.")
    return SatelliteControls(zoom, gr.Markdown(elem_id="geoapp-satellite-caption"))


def build_satellite_image(elem_id: str = "geoapp-satellite") -> gr.Image:
    return gr.Image(label="Satellite view", interactive=False, height=300, type="pil", format="jpeg", elem_id=elem_id)


# ---------------------------------------------------------------------------- handlers and wiring
def candidate_view(session, index, rank, zoom, source_name, online_tiles):
    """Locate: the satellite view around the chosen candidate of the shown photo."""
    if session is None or not getattr(session, "results", None):
        return None, ""
    located = session.get(index)
    candidates = located.prediction.candidates if located.prediction.ok else []
    if not candidates:
        return None, "_No candidate to show._"
    position = min(max(int(rank or 1), 1), len(candidates)) - 1
    candidate = candidates[position]
    image, caption = _VIEWS.view(candidate.lat, candidate.lon, zoom, source_name, bool(online_tiles), _gradio_notice)
    return image, f"Candidate #{candidate.rank}: " + caption


def wire_candidate_view(handler_wrapper, session, selector, rank, controls: SatelliteControls, image: gr.Image,
                        online_tiles: gr.Checkbox, tile_source: gr.Dropdown | None, shown: gr.components.Component) -> None:
    """Redraw on a new result (``shown`` changes), another candidate, zoom, source or tile setting."""
    inputs = [session, selector, rank, controls.zoom, *( [tile_source] if tile_source is not None else []), online_tiles]

    def draw(session_value, index, rank_value, zoom, *rest):
        source_name, online = (rest[0], rest[1]) if tile_source is not None else (OFFLINE, rest[0])
        return candidate_view(session_value, index, rank_value, zoom, source_name, online)

    outputs = [image, controls.caption]
    triggers = [shown.change, rank.input, controls.zoom.release, online_tiles.input]
    if tile_source is not None:
        triggers.append(tile_source.input)
    gr.on(triggers, handler_wrapper(draw), inputs=inputs, outputs=outputs, api_visibility="private",
          show_progress_on=[image])


def claim_view(workbench, session, claim_id, zoom, source_name, online_tiles):
    """Cases: the satellite view around the chosen claim (its point, or a country's representative point)."""
    if session is None or not getattr(session, "case_id", None) or not claim_id:
        return None, ""
    case = workbench.get_case(session.case_id)
    claim = next((c for c in case.claims if c.id == claim_id), None)
    if claim is None:
        return None, ""
    if claim.lat is not None and claim.lon is not None:
        lat, lon = float(claim.lat), float(claim.lon)
    else:
        from geoapp.cases.claims import claim_region

        point = claim_region(claim.region_key).geometry.representative_point()
        lat, lon = float(point.y), float(point.x)
    image, caption = _VIEWS.view(lat, lon, zoom, source_name, bool(online_tiles), _gradio_notice)
    return image, f"Claim {html.escape(claim.label)}: " + caption


def wire_claim_view(handler_wrapper, workbench, session, claim: gr.Dropdown, controls: SatelliteControls,
                    image: gr.Image, online_tiles: gr.Checkbox, tile_source: gr.Dropdown | None) -> None:
    inputs = [session, claim, controls.zoom, *([tile_source] if tile_source is not None else []), online_tiles]

    def draw(session_value, claim_id, zoom, *rest):
        source_name, online = (rest[0], rest[1]) if tile_source is not None else (OFFLINE, rest[0])
        return claim_view(workbench, session_value, claim_id, zoom, source_name, online)

    triggers = [claim.change, controls.zoom.release, online_tiles.input]
    if tile_source is not None:
        triggers.append(tile_source.input)
    gr.on(triggers, handler_wrapper(draw), inputs=inputs, outputs=[image, controls.caption],
          api_visibility="private", show_progress_on=[image])


# ---------------------------------------------------------------------------- the tile route
_background: threading.Thread | None = None
_first_stage = threading.Event()  # set once the quick first stage has put a pyramid on disk (or failed)
BUILD_WAIT_S = 90.0  # a tile request waits this long for the first-run build before giving up


def startup_build_zooms() -> tuple[int, ...]:
    """The depths the start-up build goes through: a quick first stage, then what the app shows and ships."""
    return tuple(sorted({AUTO_MAX_ZOOM, STARTUP_MAX_ZOOM}))


def building_deeper() -> bool:
    return _background is not None and _background.is_alive()


def _start_background_build() -> threading.Thread:
    """Build (or deepen) the offline pyramid once, in a background thread (started with the app)."""
    global _background
    if _background is None or not _background.is_alive():
        _background = threading.Thread(target=_build_quietly, name="geoapp-pyramid", daemon=True)
        _background.start()
    return _background


# The deeper stage runs in its own low-priority process, so its minute of rendering never competes with the
# app's requests for the interpreter (a thread would hold the GIL between numpy calls).
_DEEPEN = ("import os, signal, sys; getattr(os, 'nice', lambda n: 0)(10); "
           "signal.signal(signal.SIGTERM, lambda *a: sys.exit(1)); "  # SystemExit: the writer removes its temp file
           "from geoapp.tiles.registry import ensure_offline_pyramid; ensure_offline_pyramid(max_zoom=int(sys.argv[1]))")


def _deepen_in_a_process(zoom: int) -> None:
    process = subprocess.Popen([sys.executable, "-c", _DEEPEN, str(zoom)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    atexit.register(_stop, process)  # the app stopping stops the build too: no orphan
    _, err = process.communicate()
    if process.returncode != 0:
        raise TileSourceError(f"the background build to zoom {zoom} failed: {err.decode(errors='replace')[-500:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()


def _build_quietly() -> None:
    try:
        first, *deeper = startup_build_zooms()
        begin = time.perf_counter()
        try:
            ensure_offline_pyramid(max_zoom=first)  # quick: the first map and Satellite view wait for it
        finally:
            _first_stage.set()  # tile requests wait for this stage only, never for the deeper one
        log.info("offline pyramid ready to zoom %d (%.0f s): %s", first, time.perf_counter() - begin,
                 default_pyramid_path())
        for zoom in deeper:
            if (built_max_zoom() or 0) < zoom:
                begin = time.perf_counter()
                _deepen_in_a_process(zoom)
                log.info("offline pyramid ready to zoom %d (%.0f s)", zoom, time.perf_counter() - begin)
    except (TileSourceError, OSError) as error:  # the Satellite view repeats it to the analyst
        log.error("cannot build the offline pyramid: %s", error)


def _logged_in(request) -> bool:
    """The same rule as Gradio's own routes: with --auth, only a logged-in browser gets tiles."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True
    if app.auth_dependency is not None:
        return app.auth_dependency(request) is not None
    token = request.cookies.get(f"access-token-{app.cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{app.cookie_id}")
    return app.tokens.get(token) is not None


def tile_routes() -> list:
    """Starlette routes to pass as ``app_kwargs={"routes": …}`` to ``Blocks.launch``.

    A fresh clone has no pyramid yet: building starts now, in the background (z0–4 in ~10 s of one
    core, then down to :data:`STARTUP_MAX_ZOOM`), so that the first map and Satellite view of the
    session find it.
    """
    from starlette.responses import Response
    from starlette.routing import Route

    def serve(request) -> Response:
        if not _logged_in(request):
            return Response("login required", status_code=401)
        try:
            z, x, y = (int(request.path_params[k]) for k in ("z", "x", "y"))
        except ValueError:
            return Response("bad tile numbers", status_code=400)
        if not default_pyramid_path().is_file():
            _start_background_build()
            _first_stage.wait(BUILD_WAIT_S)  # first run: tiles arrive once the quick stage is built
            if not default_pyramid_path().is_file():
                return Response("the offline pyramid is not built yet", status_code=503)
        try:
            result = _VIEWS.source(OFFLINE, False).tile(z, x, y)
        except FormError as error:
            return Response(str(error), status_code=503)
        if not result.ok:
            return Response(result.error or "no tile here", status_code=400 if result.error else 404)
        return Response(result.data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    built = built_max_zoom()
    if built is None or built < STARTUP_MAX_ZOOM:
        _start_background_build()
    return [Route("/geoapp-tiles/offline/{z}/{x}/{y}.jpg", serve, methods=["GET"])]
