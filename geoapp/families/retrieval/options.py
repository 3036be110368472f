"""Prediction options of the GeoCLIP-style retrieval families (torch-free: specs import it)."""

from __future__ import annotations

from geoapp.families.registry import FamilyOption

# The rule (issue 18): refinement is on by default only if it slows a CPU prediction by at most 20 %.
# benchmarks/bench_refine.py measures it; see benchmarks/RESULTS.md "Fine refinement".
DEFAULT_REFINE_KM = 15.0

REFINE_OPTIONS = (
    FamilyOption("refine_km", float, DEFAULT_REFINE_KM,
                 "fine refinement: search this radius (km) around each top place with the continuous location "
                 "encoder, coarse to fine (0 = off: answers are gallery points)"),
    FamilyOption("refine_step_km", float, 0.5, "fine refinement: final grid spacing in km"),
    FamilyOption("refine_top", int, 0, "fine refinement: how many top places to refine (0 = the top-k shown, "
                                       "at most 16; each costs ~55 location encodings)"),
)
