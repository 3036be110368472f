"""What ``python -m geoapp predict`` computes from a loaded family, in one place for both ways it runs: in this
process, or in the local worker (``geoapp serve``), which calls these same functions with the caller's options.
:mod:`geoapp.cli.predict_route` chooses between the two.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

# predict's arguments that describe the call, not the model: what a request to the worker carries
CALL_ARGUMENTS = ("top_k", "region", "tencrop", "merge_km", "batch_size", "surface", "keyframes_only", "video_mode",
                  "sample_seconds", "keyframes_per_shot", "max_keyframes", "max_video_mb", "keep_frames",
                  "no_video_fusion")
FAMILY_OPTION_PREFIX = "family_option_"


@dataclass
class TextResult:
    """JSON/CSV/GeoJSON text of a whole call and what the summary lines need."""

    text: str
    count: int
    failed: list[str] = field(default_factory=list)  # the failed inputs' messages

    def to_dict(self) -> dict:
        return {"text": self.text, "count": self.count, "failed": self.failed}


def call_arguments(args: argparse.Namespace) -> dict:
    """The JSON-ready part of ``args`` a worker needs to predict as this process would."""
    return {k: v for k, v in vars(args).items() if k in CALL_ARGUMENTS or k.startswith(FAMILY_OPTION_PREFIX)}


def predict_options(args: argparse.Namespace, region):
    from geoapp.cli.family import family_extras
    from geoapp.families import PredictOptions

    return PredictOptions.build(top_k=args.top_k, region=region, tencrop=args.tencrop, merge_km=args.merge_km,
                                batch_size=max(1, args.batch_size), extras=family_extras(args))


def text_output(family, keys: list[str], args: argparse.Namespace, fmt: str, region, progress=None) -> TextResult:
    """Predictions of ``keys`` as ``fmt`` text (json, csv, geojson)."""
    from geoapp.cli import video as cli_video
    from geoapp.results import formats

    predictions = cli_video.predict(family, keys, predict_options(args, region), args, progress=progress)
    if getattr(args, "clues", None) is not None:  # evidence fusion: in this process only (see predict_route)
        from geoapp.cli import fusion as cli_fusion

        text = cli_fusion.fused_text(args, predictions, args.clues, fmt)
    else:
        text = formats.to_json(predictions, include_surface=args.surface) if fmt == "json" \
            else formats.WRITERS[fmt](predictions)
    return TextResult(text, len(predictions), [p.error for p in predictions if not p.ok])


def record_output(family, keys: list[str], args: argparse.Namespace, region, progress=None) -> list[dict]:
    """The flat records (``geoapp.results.formats.to_records``) of ``keys``."""
    from geoapp.cli import video as cli_video
    from geoapp.results import formats

    return formats.to_records(cli_video.predict(family, keys, predict_options(args, region), args, progress=progress))
