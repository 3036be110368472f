"""Prediction options of the GeoCLIP-style retrieval families (torch-free: specs import it)."""

from __future__ import annotations

from geoapp.families.registry import FamilyOption

# The rule (issue 22): fine refinement is on by default for a family only where it measurably improves
# accuracy on that family's held-out data (`python -m training.evaluate --compare-refinement`; the rule in
# training/refinement.py). Each family passes its own default; see benchmarks/RESULTS.md "Fine refinement".
REFINE_KM_WHEN_ON = 15.0  # the radius `--refine-km` users are pointed to, and --compare-refinement's default


def refine_options(default_km: float) -> tuple[FamilyOption, ...]:
    """The refinement options of a family whose measured default radius is ``default_km`` (0 = off)."""
    return (
        FamilyOption("refine_km", float, float(default_km),
                     "fine refinement: search this radius (km) around each top place with the continuous location "
                     f"encoder, coarse to fine (0 = off: answers are gallery points; try {REFINE_KM_WHEN_ON:g})"),
        FamilyOption("refine_step_km", float, 0.5, "fine refinement: final grid spacing in km"),
        FamilyOption("refine_top", int, 0, "fine refinement: how many top places to refine (0 = the top-k shown, "
                                           "at most 16; each costs ~55 location encodings)"),
    )
