"""Small Folium elements of geoapp's maps, all without folium's CDN defaults: safe text, popups and tooltips
bound with plain Leaflet, the offline country basemap, a canvas point cloud and page overlays."""

from __future__ import annotations

import html

import folium
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.template import Template

from geoapp.results.textsafe import display_text

BASEMAP_GLOBAL = "GEOAPP_COUNTRIES"  # the global the basemap script defines (a GeoJSON FeatureCollection)


# ---------------------------------------------------------------------------- text safety
def safe_text(value: object) -> str:
    """User text -> HTML-safe text (also safe inside JS template literals: no ` or $)."""
    return html.escape(display_text(value), quote=True).replace("`", "&#96;").replace("$", "&#36;")


# ---------------------------------------------------------------------------- small elements
class Bind(folium.MacroElement):
    """Bind a popup or tooltip to the parent layer with plain Leaflet (folium's Popup needs jQuery)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            {{ this._parent.get_name() }}.{{ this.method }}({{ this.content|tojson }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, method: str, content: str, **options: object) -> None:
        super().__init__()
        self._name = "Bind"
        self.method = method
        self.content = content
        self.options = options


def popup(content_html: str, max_width: int = 320) -> Bind:
    return Bind("bindPopup", content_html, maxWidth=max_width)


def tooltip(content_html: str) -> Bind:
    return Bind("bindTooltip", content_html, sticky=False, direction="top")


class CountryOutlines(JSCSSMixin, Layer):
    """Offline basemap: country polygons from a script served with the app (no tile server).

    Drawn in its own pane *below* the tile pane: online tiles cover it when they load, and it
    is what the analyst sees when they cannot (offline mode, blocked network).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            {{ this._parent.get_name() }}.createPane("geoappBasemap");
            {{ this._parent.get_name() }}.getPane("geoappBasemap").style.zIndex = 150;
            var {{ this.get_name() }} = L.geoJSON(
                window[{{ this.global_name|tojson }}] || {"type": "FeatureCollection", "features": []},
                {style: {{ this.style|tojson }}, interactive: false, pane: "geoappBasemap"}
            );
        {% endmacro %}
        """
    )

    def __init__(self, script_url: str, name: str) -> None:
        super().__init__(name=name, overlay=False, control=False, show=True)
        self._name = "CountryOutlines"
        self.global_name = BASEMAP_GLOBAL
        self.style = {"color": "#7d8791", "weight": 0.7, "fillColor": "#f4f1ea", "fillOpacity": 1.0}
        # Instance attribute: never mutate folium's class-level lists (shared across threads).
        self.default_js = [("geoapp_countries", script_url)]
        self.default_css = []


class PointCloud(Layer):
    """Many small circles drawn on one canvas: [lat, lon, colour, radius, opacity, tooltip]."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = (function () {
                var group = L.featureGroup();
                var renderer = L.canvas({padding: 0.5});
                var points = {{ this.points|tojson }};
                for (var i = 0; i < points.length; i++) {
                    var p = points[i];
                    L.circleMarker([p[0], p[1]], {renderer: renderer, radius: p[3], stroke: false,
                                                  fillColor: p[2], fillOpacity: p[4]})
                        .bindTooltip(p[5]).addTo(group);
                }
                return group;
            })();
        {% endmacro %}
        """
    )

    def __init__(self, points: list[list], name: str, show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "PointCloud"
        self.points = points


def overlay_html(root: folium.Figure, html_text: str) -> None:
    """Add a fixed box (banner, legend) on top of the map page."""
    root.html.add_child(folium.Element(html_text))
