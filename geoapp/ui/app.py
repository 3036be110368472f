"""build_app(): the tabs assembled into one gr.Blocks, and the arguments to launch it.

Tabs are a list of :class:`TabSpec`; a new tab (the case store's "Cases" tab) is one more
entry in :func:`default_tabs`, built from the same :class:`UiContext` and :class:`SharedWidgets`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gradio as gr
from starlette.middleware import Middleware

from geoapp.ui.access import HostRule, parse_networks
from geoapp.ui.assets import map_asset_dir
from geoapp.ui.cases_tab import build_cases_tab
from geoapp.ui.common import UiContext
from geoapp.ui.config import MB, OFFLINE_MAP_EFFECT, AppConfig, is_loopback
from geoapp.ui.guard import GuardPolicy, RequestGuard, normalised_origins
from geoapp.ui.locate_tab import build_locate_tab
from geoapp.ui.models_tab import build_models_tab
from geoapp.ui.satellite import build_tile_source_setting, tile_routes
from geoapp.ui.service import GeolocationService, ModelSettings
from geoapp.ui.text_map_tab import build_text_map_tab
from geoapp.ui.warmup import Warmup
from geoapp.ui.theme import CSS, build_theme

TITLE = "geoapp — where was this photo taken?"


@dataclass(frozen=True)
class SharedWidgets:
    """Widgets outside the tabs that tabs read (settings)."""

    online_tiles: gr.Checkbox
    tile_source: gr.Dropdown | None = None  # Satellite view source (geoapp/ui/satellite.py)


@dataclass(frozen=True)
class TabSpec:
    label: str
    build: Callable[[UiContext, SharedWidgets], None]
    elem_id: str


def default_tabs() -> list[TabSpec]:
    return [
        TabSpec("Locate", lambda ctx, shared: build_locate_tab(ctx, shared.online_tiles, shared.tile_source), "tab-locate"),
        TabSpec("Text → Map", lambda ctx, shared: build_text_map_tab(ctx, shared.online_tiles), "tab-text-map"),
        TabSpec("Cases", lambda ctx, shared: build_cases_tab(ctx, shared.online_tiles, tile_source=shared.tile_source),
                "tab-cases"),
        TabSpec("Models", lambda ctx, shared: build_models_tab(ctx), "tab-models"),
    ]


def _header(ctx: UiContext) -> None:
    gr.Markdown(f"# {TITLE}\nDrop a photo: candidate places on a map, how sure the model is, what in the image "
                "drove the guess, and how it compares with the photo's metadata or a claim.", elem_id="geoapp-header")
    if ctx.random_weights:
        gr.HTML('<div class="geoapp-random" role="alert"><b>TEST MODE — RANDOM WEIGHTS.</b> This app was started with '
                "<code>--backbone-weights random</code>: every map, table and heatmap comes from an untrained model and "
                "says nothing about where a photo was taken.</div>")
    problem = ctx.service.weights_problem()
    if problem is not None and not ctx.random_weights:
        active = ctx.service.spec(ctx.service.default_model())
        caveat = f" {html.escape(active.caveat)}" if active.caveat else ""
        text = ("" if ctx.service.default_model(text_only=True) else " Text → Map needs a text-capable model.")
        gr.HTML('<div class="geoapp-notice"><b>The best model cannot run on this machine yet.</b> Until it can, the '
                f"Locate tab uses <b>{html.escape(active.label)}</b>.{caveat}{text} "
                f"{_code_spans(html.escape(problem))} The Models tab lists what is present.</div>")


def _code_spans(text: str) -> str:
    """`command` -> <code>command</code> (on already escaped text), so commands stand out."""
    parts = text.split("`")
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


@dataclass(frozen=True)
class BuiltApp:
    """The Blocks, the keyword arguments for ``Blocks.launch``, and what runs behind the tabs."""

    demo: gr.Blocks
    launch: dict
    service: GeolocationService
    config: AppConfig

    def start_background_work(self, announce: Callable[[str], None] | None = None) -> Warmup | None:
        """Once the server listens: load the default model and prepare its gallery, so the first result does
        not wait for them (nothing with ``--no-preload``)."""
        return self.service.start_warmup(announce=announce) if self.config.preload else None


def build_app(config: AppConfig, tabs: Sequence[TabSpec] | None = None) -> tuple[gr.Blocks, dict]:
    """The Blocks and the keyword arguments for ``Blocks.launch`` (server, auth, theme ...)."""
    built = build_ui(config, tabs)
    return built.demo, built.launch


def build_ui(config: AppConfig, tabs: Sequence[TabSpec] | None = None) -> BuiltApp:
    """:func:`build_app` with the service (``app.py`` starts its background work once the server listens)."""
    asset_dir = map_asset_dir()
    # Serve exactly this folder (Leaflet, heatmap plugin, basemap) at gradio_api/file=<path>.
    gr.set_static_paths([asset_dir])
    service = GeolocationService(ModelSettings(backbone=config.backbone, backbone_weights=config.backbone_weights,
                                               device=config.device, runtime=config.runtime,
                                               precision=config.precision,
                                               gallery=str(config.gallery) if config.gallery else None))
    ctx = UiContext(config=config, service=service, asset_prefix=f"gradio_api/file={asset_dir.as_posix()}/",
                    offline_tiles=True)
    with gr.Blocks(title="geoapp", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
        _header(ctx)
        with gr.Accordion("Map settings", open=False):
            # With --offline-map the page's security policy forbids tile servers, so the box stays off.
            online_tiles = gr.Checkbox(
                value=not config.offline_map, interactive=not config.offline_map,
                label="Online map tiles (OpenStreetMap streets, Esri satellite imagery)",
                info="Off: the page contacts nothing but this app (country outlines as the basemap). "
                     + (f"Started with --offline-map: {OFFLINE_MAP_EFFECT}." if config.offline_map else ""))
            tile_source = build_tile_source_setting()
        shared = SharedWidgets(online_tiles=online_tiles, tile_source=tile_source)
        with gr.Tabs():
            for spec in tabs if tabs is not None else default_tabs():
                with gr.Tab(spec.label, elem_id=spec.elem_id):
                    spec.build(ctx, shared)
        ctx.pickers.wire(demo, service)  # model lists follow trained models appearing on disk
    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=config.queue_max_size)
    launch = {
        "server_name": config.host, "server_port": config.port, "share": config.share, "auth": config.auth,
        "theme": build_theme(), "css": CSS, "max_file_size": config.max_file_size, "show_error": True,
        "footer_links": ["api", "settings"],
        "run_history": False,  # results would be kept in the browser; analysts' material stays on the server
        "enable_monitoring": False, "mcp_server": False, "ssr_mode": False, "pwa": False,
        # Per-session state (results, open case) is kept for this many sessions at most (and SESSION_TTL_S).
        "state_session_capacity": config.max_sessions,
        "app_kwargs": {"routes": tile_routes(),  # the offline pyramid's tiles, from this server only
                       "middleware": [Middleware(RequestGuard, policy=guard_policy(config))]},
    }
    return BuiltApp(demo, launch, service, config)


def guard_policy(config: AppConfig) -> GuardPolicy:
    """Headers, origin, upload and login rules for this configuration (see geoapp.ui.guard)."""
    return GuardPolicy(online_tiles=not config.offline_map, allowed_origins=normalised_origins(config.allowed_origins),
                       hosts=HostRule.for_app(config.host, config.allowed_origins, share=config.share,
                                              loopback_only=is_loopback(config.host)),
                       trusted_proxies=parse_networks(config.trusted_proxies),
                       max_request_bytes=config.max_request_mb * MB)
