"""The 'restrict the search region' widget group, shared by the Locate and Text → Map tabs."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from geoapp.geo.regions import region_choices
from geoapp.ui.forms import (REGION_CIRCLE, REGION_CONTINENT, REGION_COUNTRY, REGION_GEOJSON, REGION_MODES,
                             REGION_WORLD, RegionForm)


@dataclass
class RegionPicker:
    """The widgets; ``inputs()`` gives them in the order :meth:`RegionForm.from_values` takes."""

    mode: gr.Radio
    country: gr.Dropdown
    continent: gr.Dropdown
    circle_lat: gr.Number
    circle_lon: gr.Number
    circle_radius_km: gr.Number
    geojson: gr.File

    def inputs(self) -> list[gr.components.Component]:
        return [self.mode, self.country, self.continent, self.circle_lat, self.circle_lon, self.circle_radius_km,
                self.geojson]


def _visibility(mode: str) -> tuple:
    """Show only the fields of the chosen mode."""
    return (gr.update(visible=mode == REGION_COUNTRY), gr.update(visible=mode == REGION_CONTINENT),
            gr.update(visible=mode == REGION_CIRCLE), gr.update(visible=mode == REGION_GEOJSON))


def build_region_picker() -> RegionPicker:
    """Lay out the region widgets (inside the caller's layout context) and wire their visibility."""
    choices = region_choices()
    mode = gr.Radio(list(REGION_MODES), value=REGION_WORLD, label="Search in",
                    info="Candidates outside the region are dropped; inside it a dense grid is added.")
    country = gr.Dropdown([(f"{name} ({code})", code) for code, name in choices["countries"]], value=None,
                          label="Country", filterable=True, visible=False, info="Type to search by name or code",
                          # API clients may pass a name ("France"); the engine resolves it or suggests one.
                          allow_custom_value=True)
    continent = gr.Dropdown(list(choices["continents"]), value=None, label="Continent", visible=False)
    with gr.Row(visible=False) as circle_row:
        circle_lat = gr.Number(label="Centre latitude", value=None, minimum=-90, maximum=90)
        circle_lon = gr.Number(label="Centre longitude", value=None, minimum=-180, maximum=180)
        circle_radius = gr.Number(label="Radius (km)", value=50, minimum=0.1)
    geojson = gr.File(label="Polygon (.geojson)", file_types=[".geojson", ".json"], visible=False)
    mode.change(_visibility, inputs=mode, outputs=[country, continent, circle_row, geojson],
                api_visibility="private", queue=False, show_progress="hidden")
    return RegionPicker(mode, country, continent, circle_lat, circle_lon, circle_radius, geojson)


def region_form(*values: object) -> RegionForm:
    """Widget values (in ``RegionPicker.inputs()`` order) -> :class:`RegionForm`."""
    return RegionForm.from_values(*values)  # type: ignore[arg-type]
