"""Where a regional model's photos come from: a folder (GPS from EXIF) or a CSV ``path,lat,lon``.

Nothing is fatal: photos without GPS, unreadable files and photos outside the chosen countries
are listed in the :class:`SourceReport` and skipped.

An uploaded source (the app's Models tab) is read with ``within=`` its unpacked folder: a CSV row
whose file is not inside it (an absolute path, ``..``, a link out) is refused by its line number,
before anything is looked up, so the log never tells which server files exist.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoapp.geo.countries import get_country_index
from geoapp.imaging import ImageLoadError, iter_image_paths, read_exif

COAST_TOLERANCE_KM = 2.0


class SourceError(ValueError):
    """The source cannot be used at all (missing, empty, bad CSV); the message says what to do."""


@dataclass
class Record:
    """One geotagged photo."""

    path: Path
    lat: float
    lon: float
    country: int = -1  # index into the chosen countries


@dataclass
class SourceReport:
    """What was read and what was skipped (and why)."""

    found: int = 0
    no_gps: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # "name (lat, lon: country)"
    refused: list[str] = field(default_factory=list)  # "line N" of the CSV: a file outside the uploaded folder

    def lines(self) -> list[str]:
        out = [f"{self.found} photos found"]
        for title, items in (("CSV rows naming a file outside the uploaded folder (refused)", self.refused),
                             ("without GPS (skipped)", self.no_gps), ("unreadable (skipped)", self.unreadable),
                             ("outside the chosen countries (skipped)", self.outside)):
            if items:
                shown = ", ".join(items[:10]) + (f", ... ({len(items) - 10} more)" if len(items) > 10 else "")
                out.append(f"{len(items)} {title}: {shown}")
        return out

    def to_dict(self) -> dict:
        return {"found": self.found, "no_gps": len(self.no_gps), "unreadable": len(self.unreadable),
                "outside": len(self.outside), "refused": len(self.refused)}


def parse_countries(text: str) -> list[str]:
    """"SE,CH" -> ["SE", "CH"] (ISO codes or names, checked against Natural Earth)."""
    index = get_country_index()
    codes = []
    for item in (part.strip() for part in str(text or "").split(",")):
        if not item:
            continue
        country = index.find(item)
        if country is None:
            hint = ", ".join(index.suggest(item, n=3))
            raise SourceError(f"unknown country {item!r}" + (f"; did you mean {hint}?" if hint else ""))
        codes.append(country.code)
    if not codes:
        raise SourceError("name at least one country, e.g. --countries SE,CH")
    return list(dict.fromkeys(codes))


def read_source(source: str | Path, countries: list[str],
                within: str | Path | None = None) -> tuple[list[Record], SourceReport]:
    """Geotagged photos of ``source`` that lie in ``countries``; with ``within``, only files inside that folder."""
    source = Path(source)
    report = SourceReport()
    root = None if within is None else Path(within).resolve()
    if root is not None and not _inside(source, root):
        raise SourceError("the source is not inside the folder it must come from")
    if source.is_file() and source.suffix.lower() == ".csv":
        candidates = _read_csv(source, report, root)
    elif source.is_dir():
        candidates = [r for r in _read_folder(source, report) if root is None or _inside(r.path, root)]
    else:
        raise SourceError(f"{source} is neither a folder of photos nor a .csv file of path,lat,lon")
    if not candidates:
        raise SourceError(f"no geotagged photo in {source} ({'; '.join(report.lines())}). Photos need EXIF GPS, "
                          "or list them in a CSV with columns path,lat,lon")
    return _in_countries(candidates, countries, report), report


def _read_folder(folder: Path, report: SourceReport) -> list[Record]:
    records = []
    for path in iter_image_paths([folder]):
        report.found += 1
        try:
            exif = read_exif(path)
        except ImageLoadError:
            report.unreadable.append(path.name)
            continue
        if not exif.has_gps:
            report.no_gps.append(path.name)
            continue
        records.append(Record(path, float(exif.gps_lat), float(exif.gps_lon)))
    return records


def _inside(path: Path, root: Path) -> bool:
    """Does ``path`` (links followed) lie inside ``root``? Decided without asking whether it exists."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _read_csv(path: Path, report: SourceReport, root: Path | None = None) -> list[Record]:
    records = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.lower(): name for name in reader.fieldnames or []}
        missing = [c for c in ("path", "lat", "lon") if c not in columns]
        if missing:
            raise SourceError(f"{path} needs the columns path,lat,lon (missing: {', '.join(missing)})")
        for row in reader:
            report.found += 1
            name = row[columns["path"]] or ""
            file = Path(name) if Path(name).is_absolute() else path.parent / name
            if root is not None and (Path(name).is_absolute() or not _inside(file, root)):
                report.refused.append(f"line {reader.line_num}")  # no path, no existence check: nothing to learn
                continue
            try:
                lat, lon = float(row[columns["lat"]]), float(row[columns["lon"]])
            except (TypeError, ValueError):
                report.no_gps.append(name)
                continue
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                report.no_gps.append(name)
                continue
            if not file.is_file():
                report.unreadable.append(name)
                continue
            records.append(Record(file, lat, lon))
    return records


def _in_countries(records: list[Record], countries: list[str], report: SourceReport) -> list[Record]:
    index = get_country_index()
    lat = np.array([r.lat for r in records])
    lon = np.array([r.lon for r in records])
    found = index.lookup(lat, lon).astype(object)
    _snap_to_coast(found, lat, lon, countries)
    kept = []
    for record, country in zip(records, found):
        code = str(country)
        if code in countries:
            record.country = countries.index(code)
            kept.append(record)
        else:
            report.outside.append(f"{record.path.name} ({record.lat:.4f}, {record.lon:.4f}: {code or 'sea'})")
    return kept


def _snap_to_coast(found: np.ndarray, lat: np.ndarray, lon: np.ndarray, countries: list[str]) -> None:
    """Photos just off the coastline (harbours, piers, ferries: EXIF GPS at sea by the 1:10m polygons)
    count for a chosen country within ``COAST_TOLERANCE_KM``."""
    import shapely

    at_sea = np.flatnonzero(found == "")
    if not len(at_sea):
        return
    points = shapely.points(lon[at_sea], lat[at_sea])
    index = get_country_index()
    best = np.full(len(at_sea), np.inf)
    for code in countries:
        # Degrees -> km with 111.32 km per degree: exact along meridians, an overestimate along
        # parallels (a degree of longitude is shorter), so the tolerance only ever errs on the safe side.
        distance = shapely.distance(index.get(code).geometry, points) * 111.32
        closer = (distance <= COAST_TOLERANCE_KM) & (distance < best)
        found[at_sea[closer]] = code
        best = np.minimum(best, distance)
