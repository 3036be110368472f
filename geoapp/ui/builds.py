"""Build a model variant from the analyst's own photos (no Gradio): unpack the source safely, run the family's
builder as a subprocess with its output streamed, and read the held-out metrics from the manifest.

A subprocess keeps the app's layers intact (``geoapp`` never imports ``training``) and keeps a long build
from blocking the server; its lines (progress bars included) are passed on as they come.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geoapp.families import registry
from geoapp.families.variants import MANIFEST, check_tag, variants_dir
from geoapp.safezip import UnsafeZipError, ZipLimits, extract_all
from geoapp.ui.forms import FormError

REPO_ROOT = Path(__file__).resolve().parents[2]
UPLOAD_LIMITS = ZipLimits()  # the shared rules (geoapp.safezip): the same as for case bundles
COUNTRIES = re.compile(r"^[A-Za-z][A-Za-z ,'.-]{0,300}$")


@dataclass(frozen=True)
class BuildRequest:
    family: str
    countries: str
    method: str
    name: str
    zip_path: str | None = None  # an uploaded .zip of photos (or photos + a CSV)
    folder: str | None = None  # a folder on the server (allowed only when the app listens on loopback)
    backbone: str = ""  # one of the builder's backbones ("": the builder's default)


def check_request(request: BuildRequest, allow_folders: bool) -> None:
    spec = registry.get(request.family)
    if spec.builder is None:
        raise FormError(f"{spec.label} cannot be built from photos here.")
    if request.method not in spec.builder.methods:
        raise FormError(f"Unknown method {request.method!r}; choose one of {', '.join(spec.builder.methods)}.")
    backbones = [value for _, value in spec.builder.backbones]
    if request.backbone and request.backbone not in backbones:
        raise FormError(f"Unknown backbone {request.backbone!r}; choose one of {', '.join(backbones) or 'none'}.")
    try:
        check_tag(request.name)
    except ValueError as error:
        raise FormError(str(error)) from error
    if not COUNTRIES.match(request.countries or ""):
        raise FormError("Name the countries as ISO codes or names separated by commas (e.g. SE,CH).")
    if bool(request.zip_path) == bool(request.folder):
        raise FormError("Give either a .zip of photos or a folder on the server (one of the two).")
    if request.folder and not allow_folders:
        raise FormError("Server folders can only be used when the app listens on this machine only; upload a .zip.")
    if request.folder and not Path(request.folder).expanduser().is_dir():
        raise FormError(f"No such folder on the server: {request.folder}")


def unpack_zip(path: str, target: Path) -> Path:
    """Extract an uploaded zip of photos into ``target`` with the shared rules of :mod:`geoapp.safezip`
    (safe names, no links, sizes capped in proportion to the upload and to the free disk)."""
    try:
        extract_all(path, target, UPLOAD_LIMITS)
    except UnsafeZipError as error:
        raise FormError(str(error)) from error
    root = target.resolve()
    csvs = sorted(root.rglob("*.csv"))
    return csvs[0] if len(csvs) == 1 else root  # a CSV of path,lat,lon if the zip has one, else the photos


def _hide(text: str, work: str) -> str:
    """The builder's text without the server's temporary folder (it names the upload instead)."""
    return text.replace(work + os.sep, "").replace(work, "the uploaded zip")


def run_build(request: BuildRequest, allow_folders: bool) -> Iterator[str]:
    """Yield the builder's output line by line (progress bars as they update); raise FormError on failure."""
    check_request(request, allow_folders)
    spec = registry.get(request.family)
    with tempfile.TemporaryDirectory(prefix="geoapp-build-") as work:
        work = str(Path(work).resolve())
        source = unpack_zip(request.zip_path, Path(work)) if request.zip_path else Path(request.folder).expanduser()
        command = [sys.executable, "-m", spec.builder.module, "build", str(source), "--countries", request.countries,
                   "--method", request.method, "--name", request.name, "--from-app"]
        if request.backbone:
            command += ["--backbone", request.backbone]
        if request.zip_path:  # an upload may only name files it carries (CSV rows with /etc/... or ../ refused)
            command += ["--paths-within", work]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEOAPP_VARIANTS_DIR": str(variants_dir())}
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        tail: list[str] = []
        buffer = b""
        try:
            while chunk := os.read(process.stdout.fileno(), 4096):
                buffer += chunk
                *lines, buffer = re.split(rb"[\r\n]", buffer)
                for raw in lines:
                    line = _hide(raw.decode("utf-8", "replace").strip(), work)
                    if line:
                        tail = (tail + [line])[-20:]
                        yield line
        finally:
            code = process.wait()
        if buffer.strip():
            tail.append(_hide(buffer.decode("utf-8", "replace").strip(), work))
    if code != 0:
        errors = [line for line in tail if line.startswith("error:")] or tail[-3:]
        raise FormError("The build failed: " + " ".join(errors))


def built_manifest(name: str) -> dict:
    """The manifest of a built variant (metrics included)."""
    path = variants_dir() / name / MANIFEST
    return json.loads(path.read_text(encoding="utf-8"))


def _metric_cells(values: dict) -> list[str]:
    within = values.get("within_km") or {}
    cells = [f"{float(values.get('country_accuracy', float('nan'))):.1f} %"]
    return cells + [f"{float(within.get(str(r), within.get(r, float('nan')))):.1f} %" for r in (25, 200, 750)]


def heldout_summary(manifest: dict) -> str | None:
    """One line for the Models tab: a built variant's test metrics beside the most-common-cell baseline."""
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict) or "country_accuracy" not in metrics:
        return None
    country, km25, km200, km750 = _metric_cells(metrics)
    line = (f"Held-out test photos ({manifest.get('heldout_images', '?')}, never used in training): country "
            f"{country}, within 25 km {km25}, 200 km {km200}, 750 km {km750}")
    baseline = manifest.get("baseline_most_common_cell")
    if isinstance(baseline, dict) and "country_accuracy" in baseline:
        b_country, _, b_km200, _ = _metric_cells(baseline)
        line += f" (most common cell: country {b_country}, 200 km {b_km200})"
    backbone = (manifest.get("backbone") or {}).get("name")
    return line + (f"; features: {backbone}" if backbone else "")


def metrics_markdown(manifest: dict) -> str:
    """Held-out metrics of a built variant against the most-common-cell baseline."""
    metrics = manifest.get("metrics") or {}
    baseline = manifest.get("baseline_most_common_cell") or {}
    key = f"{manifest.get('family')}:{manifest.get('tag')}"

    def row(label: str, values: dict) -> str:
        return f"| {label} | " + " | ".join(_metric_cells(values)) + " |"

    lines = [f"**Built `{key}`** — {manifest.get('label', '')}: {manifest.get('training_images', '?')} training "
             f"photos, {manifest.get('validation_images', 0)} for early stopping, "
             f"{manifest.get('heldout_images', '?')} held out for the test below.", "",
             "| held-out test photos | country | ≤ 25 km | ≤ 200 km | ≤ 750 km |", "|---|---|---|---|---|",
             row("this model", metrics), row("most common cell (baseline)", baseline), "",
             f"Choose **{key}** in Locate or Cases (it is listed there now)."]
    return "\n".join(lines)
