"""Where a ``geoapp predict`` call runs: a running local worker with the same model options (unless
``--no-worker``), else the family loaded in this process; a worker that fails mid-call is left for the in-process
path with one stderr line. Both compute with :mod:`geoapp.cli.predict_job`.
"""

from __future__ import annotations

import argparse
import sys

from geoapp.cli.predict_job import TextResult, record_output, text_output


def _note(message: str) -> None:
    print(message, file=sys.stderr)


class _Progress:
    """The worker's progress on the bar, taken back when the call falls back to this process."""

    def __init__(self, bar):
        self.bar, self.done = bar, 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.bar.update(n)

    def undo(self) -> None:
        self.bar.update(-self.done)


def run_text(args: argparse.Namespace, keys: list[str], fmt: str, region, bar) -> TextResult:
    """The whole call's text, from a matching local worker or in this process."""
    from geoapp.cli.family import load_family_from_args
    from geoapp.cli.worker.client import WorkerUnavailable, open_worker

    # evidence fusion (--clue/--fuse/--area) works on Prediction objects, which the worker does not send back
    worker = open_worker(args, _note) if getattr(args, "clues", None) is None else None
    if worker is not None:
        progress = _Progress(bar)
        try:
            with worker:
                return worker.predict_text(keys, args, fmt, progress=progress)
        except WorkerUnavailable as unavailable:
            _note(str(unavailable))
            progress.undo()
    from geoapp.cli import video as cli_video

    cli_video.video_settings(args)  # bad video options fail before the model loads (a worker checks them itself)
    return text_output(load_family_from_args(args), keys, args, fmt, region, progress=bar.update)


class RecordsRunner:
    """Records chunk by chunk, from a matching local worker while it answers, else from the family loaded here
    (loaded on the first chunk that needs it). Use as a context manager."""

    def __init__(self, args: argparse.Namespace, region):
        from geoapp.cli.worker.client import open_worker

        self.args, self.region, self.family = args, region, None
        self.worker = open_worker(args, _note)

    def __enter__(self) -> "RecordsRunner":
        return self

    def __exit__(self, *exc) -> None:
        if self.worker is not None:
            self.worker.close()

    def records(self, keys: list[str], bar) -> list[dict]:
        from geoapp.cli.worker.client import WorkerUnavailable

        if self.worker is not None:
            progress = _Progress(bar)
            try:
                return self.worker.predict_records(keys, self.args, progress=progress)
            except WorkerUnavailable as unavailable:  # this chunk and the rest: in this process
                _note(str(unavailable))
                self.worker.close()
                self.worker = None
                progress.undo()
        if self.family is None:
            from geoapp.cli.family import load_family_from_args

            self.family = load_family_from_args(self.args)
        return record_output(self.family, keys, self.args, self.region, progress=bar.update)
