"""The analyst web UI (Gradio): one module per tab, a service layer between tabs and the engine.

- ``config``    AppConfig: command-line flags, validated (auth required off loopback)
- ``forms``     typed form values (LocateForm, RegionForm, TextMapForm) built from widget values
- ``service``   GeolocationService: the one shared, lazily loaded Geolocator behind a lock
- ``views``     results -> tables, EXIF panels, banners (plain data, no Gradio)
- ``assets``    the folder of map assets served by the app (Leaflet, heatmap plugin, basemap)
- ``theme``     system-font theme and CSS (no web fonts)
- ``common``    UiContext shared by the tabs; analyst errors -> gr.Error
- ``region_picker``, ``locate_tab``, ``text_map_tab``, ``models_tab``: widgets and events
- ``app``       build_app(): assembles the tabs into gr.Blocks

Only ``common``, ``theme``, the tab modules and ``app`` import Gradio; the engine never imports
this package.
"""

import os

# Set here, before any module of this package imports gradio: no usage analytics, no version check.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
