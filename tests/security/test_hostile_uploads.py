"""Regional-build uploads built to read server files or fill the disk (issue 26, items 1 and 5).

Every hostile file is made here: a CSV that names server files (absolute, ``../``, a link out, existing
and missing alike), a zip with an honest 1 GB member in a few MB, a zip whose size headers lie.
"""

from __future__ import annotations

import os
import shutil
import struct
import types
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from geoapp.families.regional.model import load_model
from geoapp.safezip import UnsafeZipError, ZipLimits, extract_all, total_limit
from geoapp.ui import builds
from geoapp.ui.forms import FormError
from tests.training.test_regional import PLACES, write_photo
from training.regional.sources import read_source

SERVER_PHOTO = "server_secret_photo.jpg"


@pytest.fixture
def variants(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    return tmp_path / "variants"


def _server_files(tmp_path: Path) -> Path:
    """A folder of 'server' files the upload must never reach: one photo with GPS in Italy."""
    server = tmp_path / "server"
    server.mkdir()
    write_photo(server / SERVER_PHOTO, 41.9, 12.5, (200, 10, 10), np.random.default_rng(7))
    return server


def _hostile_csv_lines(server: Path) -> list[str]:
    """Rows that point outside the upload at an existing server photo and at a missing one, each as an
    absolute path and as a ``../`` path (enough of them to reach / from wherever the zip is unpacked)."""
    secret, missing = server / SERVER_PHOTO, server / "no_such_photo.jpg"
    climb = "../" * 40
    return [f"{secret},41.9,12.5", f"{missing},41.9,12.5", f"{climb}{str(secret).lstrip('/')},41.9,12.5",
            f"{climb}{str(missing).lstrip('/')},41.9,12.5", f"sub/../{climb}{str(secret).lstrip('/')},41.9,12.5"]


def _photos(folder: Path, count: int, rng) -> list[str]:
    rows = []
    for index in range(count):
        lat, lon = np.array(PLACES[index % len(PLACES)]) + rng.normal(0, 0.02, 2)
        name = f"photo_{index:02d}.jpg"
        write_photo(folder / name, float(lat), float(lon), (40 * (index % 6), 120, 90), rng)
        rows.append(f"{name},{lat:.5f},{lon:.5f}")
    return rows


def test_csv_rows_outside_an_uploaded_folder_are_refused_without_an_oracle(tmp_path):
    server = _server_files(tmp_path)
    upload = tmp_path / "upload"
    (upload / "sub").mkdir(parents=True)
    rows = _photos(upload, 4, np.random.default_rng(3))
    (upload / "link.jpg").symlink_to(server / SERVER_PHOTO)  # a link out (a folder source may have one)
    rows += ["sub/../photo_00.jpg,41.9,12.5"]  # '..' that stays inside is fine
    hostile = _hostile_csv_lines(server) + ["link.jpg,41.9,12.5"]
    csv = upload / "photos.csv"
    csv.write_text("path,lat,lon\n" + "\n".join(rows + hostile) + "\n")

    records, report = read_source(csv, ["IT"], within=upload)

    assert sorted(r.path.name for r in records) == ["photo_00.jpg", "photo_00.jpg", "photo_01.jpg", "photo_02.jpg",
                                                   "photo_03.jpg"]
    assert all(r.path.resolve().is_relative_to(upload.resolve()) for r in records)
    first_hostile = 2 + len(rows)
    assert report.refused == [f"line {first_hostile + i}" for i in range(len(hostile))]
    text = "\n".join(report.lines())
    assert f"{len(hostile)} CSV rows naming a file outside the uploaded folder (refused)" in text
    # No oracle: neither the names nor whether they exist on the server shows anywhere.
    assert str(server) not in text and SERVER_PHOTO not in text and "no_such_photo" not in text
    assert report.unreadable == [] and report.no_gps == []
    # A folder source is confined the same way (the link out is dropped).
    folder_records, _ = read_source(upload, ["IT"], within=upload)
    assert SERVER_PHOTO not in {r.path.name for r in folder_records} and "link.jpg" not in {
        r.path.name for r in folder_records}
    # Without `within` (a folder on the app's own machine, or the command line) nothing changes.
    local, local_report = read_source(csv, ["IT"])
    assert SERVER_PHOTO in {r.path.resolve().name for r in local} and local_report.refused == []


@pytest.mark.timeout(600)
def test_an_uploaded_zip_cannot_build_server_photos_into_a_model(variants, tmp_path):
    server = _server_files(tmp_path)
    staging = tmp_path / "staging" / "collection"
    staging.mkdir(parents=True)
    rows = _photos(staging, 12, np.random.default_rng(5))
    hostile = _hostile_csv_lines(server)
    zip_path = tmp_path / "upload.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for row in rows:
            name = row.split(",")[0]
            archive.write(staging / name, f"collection/{name}")
        archive.writestr("collection/photos.csv", "path,lat,lon\n" + "\n".join(rows + hostile) + "\n")

    lines = list(builds.run_build(builds.BuildRequest("regional", "IT", "classifier", "upload-test",
                                                      zip_path=str(zip_path)), allow_folders=False))

    log = "\n".join(lines)
    assert f"{len(hostile)} CSV rows naming a file outside the uploaded folder (refused)" in log, log
    assert SERVER_PHOTO not in log and str(server) not in log and "no_such_photo" not in log
    assert "geoapp-build-" not in log  # the server's temporary folder is never shown
    model, _ = load_model(variants / "upload-test")
    assert sorted(model.references.names) == sorted(row.split(",")[0] for row in rows)


# ---------------------------------------------------------------------------------------- item 5
def _honest_bomb(path: Path, member_bytes: int) -> Path:
    """A real (not lying) zip: one highly compressible member of ``member_bytes``."""
    zeros = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("collection/huge.tif", "w", force_zip64=True) as member:
            for _ in range(member_bytes // len(zeros)):
                member.write(zeros)
    return path


@pytest.mark.parametrize("member_mb, refusal", [(1024, "declares 1073741824 bytes; the limit is"),
                                                (256, "unpacks to more than")])
def test_an_honest_big_member_in_a_small_upload_is_refused_before_writing(tmp_path, member_mb, refusal):
    """1 GB in a 6 MB upload (over the per-member cap), 256 MB in 1.5 MB (over 20x the upload)."""
    upload = _honest_bomb(tmp_path / "bomb.zip", member_mb * 1024**2)
    assert upload.stat().st_size < 8 * 1024**2
    target = tmp_path / "unpacked"
    target.mkdir()
    with pytest.raises(FormError, match=refusal) as error:
        builds.unpack_zip(str(upload), target)
    assert not any(target.rglob("*")), "something was written before the refusal"
    assert str(tmp_path) not in str(error.value)


def test_the_cap_follows_the_upload_and_the_free_disk(tmp_path):
    small = _honest_bomb(tmp_path / "small.zip", 32 * 1024**2)  # under the 64 MB any upload may unpack to
    assert {p.name for p in extract_all(small, tmp_path / "ok")} == {"huge.tif"}
    size = small.stat().st_size
    limits = ZipLimits(ratio_slack_bytes=0, max_ratio=1000.0)
    assert total_limit(limits, size) == 1000 * size
    free = shutil.disk_usage(tmp_path).free
    assert total_limit(ZipLimits(max_total_bytes=10**15, max_ratio=1e9), size, tmp_path) <= free // 2 + 1


def _lying_zip(path: Path) -> Path:
    """A stored member whose local and central headers say it is 100 bytes shorter than it is."""
    data = np.random.default_rng(1).bytes(5000)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("collection/photo.jpg", data)
    raw = bytearray(path.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = raw.find(signature)
        struct.pack_into("<I", raw, start + size_offset, len(data) - 100)
    path.write_bytes(bytes(raw))
    return path


def test_a_lying_size_header_is_a_readable_error_without_paths_or_entities(variants, tmp_path):
    upload = _lying_zip(tmp_path / "lie.zip")
    with pytest.raises(UnsafeZipError, match="damaged or its size header is wrong"):
        extract_all(upload, tmp_path / "x", ZipLimits())
    request = builds.BuildRequest("regional", "IT", "classifier", "lie", zip_path=str(upload))
    with pytest.raises(FormError) as error:
        list(builds.run_build(request, allow_folders=False))
    message = str(error.value)
    assert "collection/photo.jpg" in message and "size header" in message and "CRC" not in message
    assert "geoapp-build-" not in message and str(tmp_path) not in message
    # The Models tab shows it as a toast: plain quotes, no HTML entities (&#x27;), no traceback.
    shown = _models_tab_error(upload)
    assert "collection/photo.jpg" in shown and "&#" not in shown and "&amp;" not in shown
    assert "geoapp-build-" not in shown and "Traceback" not in shown


def _models_tab_error(upload: Path) -> str:
    """The message the Models tab's build button raises for this upload (the real handler)."""
    from geoapp.ui.models_tab import build_variant_section

    ctx = types.SimpleNamespace(config=types.SimpleNamespace(host="127.0.0.1"))
    with gr.Blocks() as demo:
        build_variant_section(ctx, [], lambda: [])
    run = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "run")
    with pytest.raises(gr.Error) as error:
        list(run("regional", "classifier", "", "lie", "IT", str(upload), ""))  # "": the automatic backbone
    return str(error.value.message)
