"""The model dropdowns of every tab (Locate, Text → Map, Cases, Models), built and described the same way, and
the family options that go with the chosen model.

Lists stay current while the app runs: :class:`ModelPickers` lists the models again in every open page when
trained variants appear, change or vanish on disk (a build in the Models tab or on the command line, a deleted
folder), when a page is opened, and right after a build, so ``regional:NAME`` can be chosen without a restart.
The dropdowns accept any value (``allow_custom_value``): the service checks it, so the API takes a model built
after the app started, and an unknown or unavailable one is refused with a message naming the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from geoapp.ui.forms import FormError
from geoapp.ui.service import GeolocationService

REFRESH_S = 5.0  # how often an open page checks the variants folder (a few stat calls, nothing sent unchanged)


def model_info(service: GeolocationService, model: str | None) -> str:
    """The text under a model dropdown: description, input domain, caveat, and why it cannot run here."""
    if not model or model == "auto":
        return ""
    try:
        spec = service.spec(model)
    except FormError as error:
        return str(error)
    caveat = f" Caveat: {spec.caveat}" if spec.caveat else ""
    problem = service.weights_problem(model)
    unavailable = f" UNAVAILABLE HERE — {problem}" if problem else ""
    return f"{spec.description} Made for: {spec.input_domain}.{caveat}{unavailable}"


def family_options(service: GeolocationService) -> list:
    """Every family option once (FamilyOption), in registry order: one input field each."""
    seen: dict[str, object] = {}
    for spec in service.families():
        for option in spec.options:
            seen.setdefault(option.name, option)
    return list(seen.values())


def option_names(service: GeolocationService, model: str | None) -> set[str]:
    try:
        return {option.name for option in service.spec(model).options} if model and model != "auto" else set()
    except FormError:
        return set()


def options_dict(service: GeolocationService, values) -> dict:
    return {option.name: value for option, value in zip(family_options(service), values) if value not in (None, "")}


def options_collector(service: GeolocationService):
    def collect(*values):
        return options_dict(service, values)

    return collect


def chosen_options(service: GeolocationService, model: str | None, values: dict | None) -> dict:
    """The options that belong to the chosen family, converted to their types (others are ignored)."""
    if not model or model == "auto":
        model = service.default_model()
    if values is not None and not isinstance(values, dict):
        raise FormError("model_options must be an object of option names and values")
    spec = service.spec(model)
    chosen = {}
    for option in spec.options:
        value = (values or {}).get(option.name)
        if value in (None, ""):
            continue
        try:
            chosen[option.name] = option.type(value)
        except (TypeError, ValueError) as error:
            raise FormError(f"{option.name} must be a {option.type.__name__}; got {value!r}") from error
    return chosen


def model_changed(service: GeolocationService):
    """Describe the chosen model under the dropdown and show its own options."""

    def changed(model: str):
        names = option_names(service, model)
        return (gr.update(info=model_info(service, model)),
                *[gr.update(visible=option.name in names) for option in family_options(service)])

    return changed


@dataclass
class ModelPickers:
    """Every model dropdown of the page, so they are listed again together."""

    entries: list[tuple[gr.Dropdown, bool]] = field(default_factory=list)  # (dropdown, text-capable models only)

    def dropdown(self, service: GeolocationService, *, label: str, elem_id: str, text_only: bool = False,
                 value: str | None = None, **kwargs) -> gr.Dropdown:
        """A model dropdown (every model that can be chosen, unavailable ones marked), registered here."""
        value = value or service.default_model(text_only=text_only) or "auto"
        kwargs.setdefault("info", model_info(service, value))
        dropdown = gr.Dropdown(service.model_choices(text_only=text_only), value=value, label=label, elem_id=elem_id,
                               allow_custom_value=True, filterable=True, **kwargs)
        return self.add(dropdown, text_only)

    def add(self, dropdown: gr.Dropdown, text_only: bool = False) -> gr.Dropdown:
        self.entries.append((dropdown, text_only))
        return dropdown

    def refresher(self, service: GeolocationService, force: bool = False) -> Callable:
        """(signature last listed, current values...) -> (signature, dropdown updates...); nothing is sent while the
        variants folder is unchanged (the first call of a page, with None, always lists)."""

        def refresh(signature, *values):
            current = service.models_signature()
            if not force and signature == current:
                return (gr.skip(),) * (1 + len(self.entries))
            updates = []
            for (_, text_only), value in zip(self.entries, values):
                choices = service.model_choices(text_only=text_only)
                keys = {key for _, key in choices}
                keep = value if value in keys or value == "auto" else (service.default_model(text_only=text_only)
                                                                        or "auto")
                updates.append(gr.update(choices=choices, value=keep))
            return (current, *updates)

        return refresh

    def wire(self, demo: gr.Blocks, service: GeolocationService) -> None:
        """List the models again when a page opens and whenever the variants folder changes (call inside the
        Blocks, after every tab is built)."""
        if not self.entries:
            return
        signature = gr.State(None)
        dropdowns = [dropdown for dropdown, _ in self.entries]
        wiring = dict(inputs=[signature, *dropdowns], outputs=[signature, *dropdowns], queue=False,
                      show_progress="hidden", api_visibility="private")
        demo.load(self.refresher(service), **wiring)
        gr.Timer(REFRESH_S).tick(self.refresher(service), **wiring)

    def refresh_after(self, event, service: GeolocationService) -> None:
        """List the models again as soon as ``event`` (a build) ends, in this page."""
        if not self.entries:
            return
        dropdowns = [dropdown for dropdown, _ in self.entries]
        refresh = self.refresher(service, force=True)
        event.then(lambda *values: refresh(None, *values)[1:], inputs=dropdowns, outputs=dropdowns, queue=False,
                   show_progress="hidden", api_visibility="private")
