"""Command-line pieces every model-running command shares: --model (from the registry), --checkpoint,
--backbone-weights, the families' own options, and loading with the notice and caveat printed."""

from __future__ import annotations

import argparse
import sys

from geoapp.runtime.request import add_runtime_arguments


def _family_help() -> str:
    from geoapp.families import registry

    lines = [f"{spec.key} ({spec.label})" for spec in registry.families()]
    return ("; ".join(lines) + "; or auto (default): the best family whose weights are on this machine "
            "(GeoCLIP, else the shipped SatWorld model, which is made for satellite/aerial imagery; the output says so). "
            "`python -m geoapp models` lists them with their weights")


def add_family_options(p: argparse.ArgumentParser) -> None:
    """Each family's own prediction options (e.g. --beam-k), declared in its spec."""
    from geoapp.families import registry

    seen: set[str] = set()
    for spec in registry.families(include_variants=False):
        for option in spec.options:
            if option.name in seen:
                continue
            seen.add(option.name)
            p.add_argument(option.flag, dest=f"family_option_{option.name}", type=option.type, default=None,
                           choices=option.choices or None, help=f"{option.help} (default {option.default})")


def family_extras(args: argparse.Namespace) -> dict:
    """The family options given on the command line (PredictOptions.extras)."""
    prefix = "family_option_"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model, --checkpoint, --backbone-weights, --device, --backbone, --gallery (predict and case analyze)."""
    from geoapp.families import registry

    p.add_argument("--model", default=registry.AUTO, choices=[registry.AUTO, *registry.keys()], metavar="MODEL",
                   help=_family_help())
    p.add_argument("--checkpoint", default=None,
                   help="the family's own trained checkpoint (TransLocator translocator.pt, SatWorld .pt, GeoCLIP "
                        "heads); default: the family's shipped or configured one")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    p.add_argument("--backbone-weights", default=None,
                   help='backbone only: "random" for a test run with random weights (results meaningless, flagged), '
                        "or an open_clip checkpoint path; default: the pretrained weights from the local cache")
    add_runtime_arguments(p)
    p.add_argument("--backbone", default=None, help=argparse.SUPPRESS)  # tiny-test for the test suite
    p.add_argument("--gallery", default=None,
                   help="candidate GPS points for retrieval families: a CSV (LAT,LON), or dense / dense:NAME / a "
                        "folder for the prebuilt ≥10 M-point dense gallery searched through its IVF-PQ index "
                        "(build it once with `python -m geoapp gallery build-dense`); default: GeoCLIP's 100K")


def load_options_from_args(args: argparse.Namespace):
    """The LoadOptions the model arguments describe."""
    from geoapp.families import LoadOptions

    extras = {k: v for k, v in (("backbone", args.backbone), ("gallery", args.gallery),
                                ("runtime", args.runtime), ("precision", args.precision)) if v is not None}
    return LoadOptions(device=args.device, backbone_weights=args.backbone_weights, checkpoint=args.checkpoint,
                       extras=extras)


def resolve_family_from_args(args: argparse.Namespace, info=None):
    """Resolve --model (auto) without loading anything: (spec, LoadOptions), the notice printed."""
    from geoapp.families import registry

    info = info or (lambda message: print(message, file=sys.stderr))
    options = load_options_from_args(args)
    spec, notice = registry.choose(args.model, options)
    if notice:
        info(f"NOTE: {notice}")
    return spec, options


def load_family_from_args(args: argparse.Namespace, info=None):
    """Resolve --model (auto), say what is loaded, load it; the family (with its notice printed)."""
    from geoapp.engine.inputs import load_family

    info = info or (lambda message: print(message, file=sys.stderr))
    spec, options = resolve_family_from_args(args, info)
    weights = "RANDOM backbone weights" if options.random else "pretrained"
    info(f"Loading {spec.key} ({weights})...")
    family = load_family(spec, options)
    if family.random_weights:
        info("WARNING: random weights — predictions are meaningless (test mode).")
    if spec.caveat:
        info(f"CAVEAT: {spec.caveat}")
    for warning in getattr(family, "load_warnings", ()):  # e.g. a map-tile search that cannot reach its last level
        info(f"WARNING: {warning}")
    return family
