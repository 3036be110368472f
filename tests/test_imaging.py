"""Tests for geoapp.imaging: loading, normalisation, EXIF and path expansion.

Real-world samples are read in place from the checkout's sibling ``shared``
folder; everything else is generated in ``tmp_path``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from geoapp.imaging import decoders, sources
from geoapp.imaging import (
    IMAGE_EXTENSIONS,
    ExifInfo,
    ImageLoadError,
    LoadedImage,
    iter_image_paths,
    load_image,
    read_exif,
)

# Any warning that escapes the module (PIL's bomb warning, "corrupt EXIF", ...)
# fails the test: load_image must record them, not print them.
pytestmark = pytest.mark.filterwarnings("error")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EXIF_SAMPLES = SHARED / "data" / "exif-samples"
IM2GPS_DEV = SHARED / "data" / "im2gps3k-dev"


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder} (checkout's sibling ../shared)")
    return folder


def _sample_files() -> list[Path]:
    if not EXIF_SAMPLES.is_dir():
        return []
    return sorted(
        p for p in EXIF_SAMPLES.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(EXIF_SAMPLES).parts
    )


def _ground_truth() -> list[tuple[str, float, float]]:
    csv_path = EXIF_SAMPLES / "gps_ground_truth.csv"
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as fh:
        return [(row["PATH"], float(row["LAT"]), float(row["LON"])) for row in csv.DictReader(fh)]


def _params(items: list, ids) -> list:
    """Parametrise over shared files, or one skipped case when they are absent."""
    if not items:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared data missing: {EXIF_SAMPLES}"))]
    return [pytest.param(item, id=ids(item)) for item in items]


# --------------------------------------------------------------------------
# helpers that build synthetic files
# --------------------------------------------------------------------------


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _noise_jpeg(size=(256, 192), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels), "JPEG", quality=90)


def _png_header_only(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG whose IHDR claims a size; pixel data is missing.

    Costs a few bytes to build and must be rejected (or fail) without the
    loader ever allocating width*height pixels.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _jpeg_with_exif(exif: Image.Exif, size=(8, 8)) -> bytes:
    return _encode(Image.new("RGB", size, (90, 120, 150)), "JPEG", exif=exif.tobytes())


def _gps_exif(**tags) -> Image.Exif:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    for key, value in tags.items():
        gps[int(key[1:])] = value
    return exif


def R(num: int, den: int = 1) -> IFDRational:  # noqa: N802 - reads like the spec
    return IFDRational(num, den)


# --------------------------------------------------------------------------
# real samples from exif-samples
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", _params(_sample_files(), lambda p: str(p.relative_to(EXIF_SAMPLES)))
)
def test_every_sample_loads_as_rgb_or_raises_image_load_error(path: Path) -> None:
    try:
        loaded = load_image(path, min_side=256)
    except ImageLoadError as e:
        assert str(e).startswith(f"{path.name}: ")
        assert "Traceback" not in str(e)
    else:
        assert isinstance(loaded, LoadedImage)
        assert loaded.image.mode == "RGB"
        assert min(loaded.image.size) > 0
        assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert loaded.file_size == path.stat().st_size
        json.dumps(loaded.to_dict())  # reports must serialise
    try:
        info = read_exif(path)
    except ImageLoadError:
        pass
    else:
        assert isinstance(info, ExifInfo)


def test_non_image_files_in_samples_are_reported(tmp_path: Path) -> None:
    readme = _need(EXIF_SAMPLES) / "README.rst"
    with pytest.raises(ImageLoadError, match=r"^README\.rst: not an image \(unrecognised format\)$"):
        load_image(readme)


@pytest.mark.parametrize("row", _params(_ground_truth(), lambda r: r[0]))
def test_gps_matches_ground_truth(row: tuple[str, float, float]) -> None:
    rel, lat, lon = row
    path = EXIF_SAMPLES / rel
    info = read_exif(path)
    assert info.gps_lat == pytest.approx(lat, abs=1e-6)
    assert info.gps_lon == pytest.approx(lon, abs=1e-6)
    loaded = load_image(path, min_side=224)
    assert loaded.exif.gps_lat == info.gps_lat and loaded.exif.gps_lon == info.gps_lon


def test_heic_sample_has_gps_time_and_camera() -> None:
    path = _need(EXIF_SAMPLES) / "heic" / "IMG_5195.HEIC"
    loaded = load_image(path)
    assert loaded.format == "HEIF"
    assert loaded.image.mode == "RGB"
    assert loaded.image.size == loaded.original_size == (2566, 3313)
    exif = loaded.exif
    # 39° 3' 4.84" N, 94° 17' 19.58" W as stored in the file.
    assert exif.gps_lat == pytest.approx(39 + 3 / 60 + 4.84 / 3600, abs=1e-9)
    assert exif.gps_lon == pytest.approx(-(94 + 17 / 60 + 19.58 / 3600), abs=1e-9)
    assert exif.gps_altitude_m == pytest.approx(260.56, abs=0.01)
    assert exif.capture_time == "2021-04-11T15:47:53-05:00"
    assert exif.camera_make == "Apple"
    assert exif.raw["GPSLatitudeRef"] == "N"


def test_heic_without_pillow_heif_explains_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    path = _need(EXIF_SAMPLES) / "heic" / "IMG_5195.HEIC"
    monkeypatch.setattr(decoders, "_ensure_heif_support", lambda: False)
    with pytest.raises(ImageLoadError, match="pip install pillow-heif"):
        load_image(path)


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_orientation_samples_all_come_out_upright(kind: str) -> None:
    folder = _need(EXIF_SAMPLES) / "jpg" / "orientation"

    def thumb(im: Image.Image) -> np.ndarray:
        return np.asarray(im.resize((24, 24), Image.Resampling.BOX)).astype(float)

    reference = load_image(folder / f"{kind}_1.jpg").image
    expected_size = reference.size
    for n in range(1, 9):
        loaded = load_image(folder / f"{kind}_{n}.jpg")
        assert loaded.exif.orientation == n
        assert loaded.image.size == loaded.original_size == expected_size
        if n > 1:
            assert f"per EXIF orientation {n}" in " ".join(loaded.notes)
        # The upright picture must match the reference far better than any
        # mirrored/rotated variant of it (the files differ only in the digit).
        right = np.abs(thumb(loaded.image) - thumb(reference)).mean()
        for wrong in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM):
            assert right < np.abs(thumb(loaded.image.transpose(wrong)) - thumb(reference)).mean()


def test_im2gps_dev_photos_load_quickly_at_reduced_size() -> None:
    photos = sorted(_need(IM2GPS_DEV).glob("*.jpg"))
    assert photos
    for photo in photos:
        loaded = load_image(photo, min_side=224)
        assert loaded.image.mode == "RGB"
        assert min(loaded.image.size) >= min(224, min(loaded.original_size))


# --------------------------------------------------------------------------
# broken and hostile files
# --------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"^empty\.jpg: the file is empty \(0 bytes\)$"):
        load_image(path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("meeting at the usual place\n")
    with pytest.raises(ImageLoadError, match=r"^notes\.jpg: not an image \(unrecognised format\)$"):
        load_image(path)


def test_truncated_jpeg_is_detected_at_load(tmp_path: Path) -> None:
    data = _noise_jpeg()
    path = tmp_path / "corrupted.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    message = str(excinfo.value)
    assert message == "corrupted.jpg: the file is truncated or corrupt (JPEG data ends early)"
    assert excinfo.value.name == "corrupted.jpg"
    assert isinstance(excinfo.value.__cause__, OSError)  # chained for debugging


def test_truncated_real_photo(tmp_path: Path) -> None:
    source = _need(EXIF_SAMPLES) / "jpg" / "gps" / "DSCN0010.jpg"
    data = source.read_bytes()
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2], name="DSCN0010.jpg")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"^nope\.jpg: no such file$"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)


def test_file_size_cap_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(_noise_jpeg())
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageLoadError, match=r"^big\.jpg: the file is too large"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(io.BytesIO(path.read_bytes()))


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(50_000, 50_000))
    assert path.stat().st_size < 200
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(path)
    assert str(excinfo.value) == (
        "huge.png: 50000×50000 pixels exceeds the limit of 178956970 pixels "
        "(decompression-bomb protection)"
    )


def test_pixel_limit_uses_header_size() -> None:
    data = _png_header_only(200, 200)
    with pytest.raises(
        ImageLoadError,
        match=r"^tiny\.png: 200×200 pixels exceeds the limit of 10000 pixels \(decompression-bomb protection\)$",
    ):
        load_image(data, name="tiny.png", max_pixels=10_000)


def test_bomb_warning_range_neither_leaks_nor_blocks() -> None:
    # 9500×9500 lies between Pillow's warning and error thresholds: Pillow
    # warns, we stay silent (max_pixels allows it) and report the real
    # problem, the missing pixel data.
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(_png_header_only(9500, 9500), name="big.png")


def test_unsupported_format_is_named() -> None:
    data = _encode(Image.new("RGB", (16, 16)), "ICO")
    with pytest.raises(ImageLoadError, match=r"unsupported image format \(ICO\)"):
        load_image(data, name="favicon.ico")


def test_zero_size_image() -> None:
    with pytest.raises(ImageLoadError, match=r"zero width or height \(0×5\)"):
        load_image(Image.new("RGB", (0, 5)))


def test_garbage_exif_never_raises() -> None:
    jpeg = _noise_jpeg((32, 32))
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05" + bytes(range(256)) * 2
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = jpeg[:2] + segment + jpeg[2:]
    info = read_exif(data)
    assert info.gps_lat is None and info.gps_lon is None
    loaded = load_image(data, name="garbage-exif.jpg")
    assert loaded.image.size == (32, 32)


def test_mutated_files_only_ever_raise_image_load_error() -> None:
    rng = np.random.default_rng(1234)
    seeds = [
        _noise_jpeg((64, 48)),
        _jpeg_with_exif(_gps_exif(g1="N", g2=(R(43), R(28), R(2814, 1000)), g3="E", g4=(R(11), R(53), R(6))), (24, 24)),
        _encode(Image.new("RGBA", (40, 30), (1, 2, 3, 100)), "PNG"),
        _encode(Image.new("P", (40, 30)), "GIF"),
        _encode(Image.new("RGB", (40, 30), (9, 9, 9)), "TIFF", compression="tiff_lzw"),
        _encode(Image.new("RGB", (40, 30), (9, 9, 9)), "WEBP"),
    ]
    for i in range(240):
        data = bytearray(seeds[i % len(seeds)])
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, min(len(data), 600), int(rng.integers(1, 12))):
                data[int(pos)] = int(rng.integers(0, 256))
        for func in (load_image, read_exif):
            try:
                func(bytes(data))
            except ImageLoadError:
                pass


# --------------------------------------------------------------------------
# normalisation of synthetic images
# --------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    loaded = load_image(data)
    assert loaded.image.mode == "RGB"
    assert "converted CMYK to RGB" in loaded.notes
    r, g, b = loaded.image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_is_scaled_on_its_value_range() -> None:
    ramp = np.linspace(1000, 5000, 64 * 16).reshape(16, 64).astype(np.uint16)
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    data = _encode(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    loaded = load_image(data)
    pixels = np.asarray(loaded.image)
    assert loaded.image.mode == "RGB"
    assert pixels.min() == 0 and pixels.max() == 255
    assert any("scaled to 8-bit" in note for note in loaded.notes)


def test_float_image_with_nan_is_scaled() -> None:
    values = np.array([[0.0, 0.5], [np.nan, 2.0]], dtype=np.float32)
    loaded = load_image(Image.fromarray(values))
    assert np.asarray(loaded.image)[:, :, 0].tolist() == [[0, 64], [0, 255]]


def test_palette_png_with_transparency_on_white() -> None:
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    data = _encode(im, "PNG", transparency=0)
    loaded = load_image(data)
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.image.getpixel((4, 4)) == (255, 0, 0)
    assert "alpha composited on white" in loaded.notes


def test_rgba_png_composited_on_white() -> None:
    im = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    im.paste((0, 0, 255, 0), (0, 0, 5, 10))
    loaded = load_image(_encode(im, "PNG"))
    assert loaded.image.getpixel((1, 1)) == (255, 255, 255)
    assert loaded.image.getpixel((8, 8)) == (255, 0, 0)
    assert "alpha composited on white" in loaded.notes


def test_opaque_rgba_needs_no_compositing() -> None:
    loaded = load_image(_encode(Image.new("RGBA", (4, 4), (1, 2, 3, 255)), "PNG"))
    assert loaded.image.getpixel((0, 0)) == (1, 2, 3)
    assert loaded.notes == []


def test_la_png_composited_on_white() -> None:
    im = Image.new("LA", (4, 4), (0, 255))
    im.putpixel((0, 0), (0, 0))
    loaded = load_image(_encode(im, "PNG"))
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.image.getpixel((3, 3)) == (0, 0, 0)


def test_one_bit_png() -> None:
    im = Image.new("1", (9, 5), 1)
    im.putpixel((0, 0), 0)
    loaded = load_image(_encode(im, "PNG"))
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((0, 0)) == (0, 0, 0)
    assert loaded.image.getpixel((8, 4)) == (255, 255, 255)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(data)
    assert loaded.image.getpixel((10, 10)) == (255, 0, 0)
    assert "animated image: used frame 1 of 3" in loaded.notes


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    loaded = load_image(data)
    assert loaded.format == "WEBP"
    assert loaded.image.getpixel((10, 10)) == (255, 0, 0)
    assert "animated image: used frame 1 of 3" in loaded.notes


def test_exif_orientation_6_swaps_width_and_height() -> None:
    # Stored landscape: red top half, blue bottom half.  Orientation 6 means
    # "rotate 90° clockwise to view", so red ends up on the right.
    im = Image.new("RGB", (300, 200), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 300, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(_encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert loaded.image.size == (200, 300)
    assert loaded.original_size == (200, 300)
    assert loaded.exif.orientation == 6
    assert "rotated per EXIF orientation 6" in loaded.notes
    right = loaded.image.getpixel((180, 150))
    left = loaded.image.getpixel((20, 150))
    assert right[0] > 200 and left[2] > 200


def test_min_side_uses_jpeg_draft_and_keeps_both_sides() -> None:
    big = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    data = _encode(big, "JPEG", quality=85)
    loaded = load_image(data, min_side=256)
    width, height = loaded.image.size
    assert loaded.original_size == (4000, 3000)
    assert width < 4000 and height < 3000
    assert width >= 256 and height >= 256
    assert f"decoded at reduced size {width}×{height} for speed" in loaded.notes[0]
    full = load_image(data)
    assert full.image.size == (4000, 3000) and full.notes == []
    assert full.sha256 == loaded.sha256  # the hash is of the file, not the pixels


def test_min_side_with_rotation_reports_oriented_sizes() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.new("RGB", (1600, 1200), (10, 20, 30)), "JPEG", exif=exif.tobytes())
    loaded = load_image(data, min_side=300)
    assert loaded.original_size == (1200, 1600)
    assert loaded.image.size == (300, 400)
    assert min(loaded.image.size) >= 300


def test_min_side_is_ignored_for_png() -> None:
    loaded = load_image(_encode(Image.new("RGB", (900, 700)), "PNG"), min_side=100)
    assert loaded.image.size == (900, 700)


# --------------------------------------------------------------------------
# source types and names
# --------------------------------------------------------------------------


def test_bytes_like_inputs() -> None:
    data = _noise_jpeg((40, 30))
    digest = hashlib.sha256(data).hexdigest()
    for source in (data, bytearray(data), memoryview(data)):
        loaded = load_image(source)
        assert loaded.name == "<bytes>"
        assert loaded.sha256 == digest
        assert loaded.file_size == len(data)
        assert loaded.format == "JPEG"
        assert loaded.image.size == (40, 30)


def test_file_like_inputs(tmp_path: Path) -> None:
    data = _noise_jpeg((40, 30))
    loaded = load_image(io.BytesIO(data))
    assert loaded.name == "<stream>"
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    path = tmp_path / "photo 1.jpg"
    path.write_bytes(data)
    with path.open("rb") as fh:
        assert load_image(fh).name == "photo 1.jpg"
    assert load_image(str(path)).name == "photo 1.jpg"


def test_pil_input_is_not_modified() -> None:
    source = Image.new("RGBA", (6, 4), (255, 0, 0, 0))
    loaded = load_image(source)
    assert loaded.name == "<PIL image>"
    assert loaded.file_size is None
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.sha256 == hashlib.sha256(loaded.image.tobytes()).hexdigest()
    assert source.mode == "RGBA" and source.getpixel((0, 0)) == (255, 0, 0, 0)

    rgb = Image.new("RGB", (3, 3), (7, 8, 9))
    again = load_image(rgb)
    assert again.image is not rgb
    assert again.sha256 == hashlib.sha256(rgb.tobytes()).hexdigest()


def test_pil_input_from_animated_file_uses_first_frame_and_restores_position() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    opened = Image.open(io.BytesIO(_encode(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    opened.seek(1)
    loaded = load_image(opened)
    assert loaded.image.getpixel((4, 4)) == (255, 0, 0)
    assert opened.tell() == 1


def test_odd_name_is_only_a_display_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    odd = "../ünïcode spaces/..\\évil\nname .jpg"
    loaded = load_image(_noise_jpeg((16, 16)), name=odd)
    assert loaded.name == odd
    with pytest.raises(ImageLoadError) as excinfo:
        load_image(b"not an image", name=odd)
    assert str(excinfo.value).startswith(odd + ": ")
    assert list(tmp_path.iterdir()) == []  # nothing was created anywhere


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_image(b"x", max_pixels=0)
    with pytest.raises(ValueError):
        load_image(b"x", min_side=-1)


def test_error_is_a_value_error_and_pickles() -> None:
    err = ImageLoadError("a.jpg", "the file is empty (0 bytes)")
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == "a.jpg: the file is empty (0 bytes)"
    assert clone.name == "a.jpg" and clone.reason == err.reason
    plain = ImageLoadError("something went wrong")
    assert str(plain) == "something went wrong" and plain.name is None
    assert str(pickle.loads(pickle.dumps(plain))) == "something went wrong"


def test_to_dict_is_json_and_omits_pixels() -> None:
    loaded = load_image(_noise_jpeg((20, 10)), name="x.jpg")
    summary = loaded.to_dict()
    assert "image" not in summary
    assert summary["original_size"] == [20, 10]
    assert json.loads(json.dumps(summary))["name"] == "x.jpg"


# --------------------------------------------------------------------------
# EXIF parsing edge cases (synthetic EXIF written by Pillow)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "lat", "lon"),
    [
        # plain N/E degrees, minutes, seconds
        ({"g1": "N", "g2": (R(43), R(28), R(2814, 1000)), "g3": "E", "g4": (R(11), R(53), R(6456, 1000))},
         43 + 28 / 60 + 2.814 / 3600, 11 + 53 / 60 + 6.456 / 3600),
        # southern/western hemisphere
        ({"g1": "S", "g2": (R(33), R(51), R(36)), "g3": "W", "g4": (R(151), R(12), R(36))},
         -(33 + 51 / 60 + 36 / 3600), -(151 + 12 / 60 + 36 / 3600)),
        # lower-case refs and decimal minutes
        ({"g1": "s", "g2": (R(0), R(22278, 1000), R(0)), "g3": "e", "g4": (R(36), R(3385, 1000), R(0))},
         -0.3713, 36 + 3.385 / 60),
        # missing refs: stored sign kept
        ({"g2": (R(10), R(30), R(0)), "g4": (R(20), R(15), R(0))}, 10.5, 20.25),
        # zero denominator in seconds treated as unused
        ({"g1": "N", "g2": (R(33), R(51), R(0, 0)), "g3": "E", "g4": (R(151), R(12), R(0, 0))},
         33.85, 151.2),
        # zero denominator in degrees: unusable
        ({"g1": "N", "g2": (R(1, 0), R(0), R(0)), "g3": "E", "g4": (R(10), R(0), R(0))}, None, None),
        # out of range latitude / longitude
        ({"g1": "N", "g2": (R(95), R(0), R(0)), "g3": "E", "g4": (R(10), R(0), R(0))}, None, None),
        ({"g1": "N", "g2": (R(45), R(0), R(0)), "g3": "W", "g4": (R(190), R(0), R(0))}, None, None),
        # only one coordinate present
        ({"g1": "N", "g2": (R(45), R(0), R(0))}, None, None),
        # "null island" placeholder from cameras without a fix
        ({"g1": "N", "g2": (R(0), R(0), R(0)), "g3": "E", "g4": (R(0), R(0), R(0))}, None, None),
    ],
    ids=["NE", "SW", "lowercase-decimal-minutes", "missing-refs", "zero-den-seconds",
         "zero-den-degrees", "lat-out-of-range", "lon-out-of-range", "lat-only", "null-island"],
)
def test_gps_parsing(tags: dict, lat: float | None, lon: float | None) -> None:
    info = read_exif(_jpeg_with_exif(_gps_exif(**tags)))
    if lat is None:
        assert info.gps_lat is None and info.gps_lon is None
    else:
        assert info.gps_lat == pytest.approx(lat, abs=1e-9)
        assert info.gps_lon == pytest.approx(lon, abs=1e-9)


def test_altitude_below_sea_level_and_raw_values() -> None:
    exif = _gps_exif(g1="N", g2=(R(31), R(30), R(0)), g3="E", g4=(R(35), R(30), R(0)),
                     g5=b"\x01", g6=R(4305, 10))
    info = read_exif(_jpeg_with_exif(exif))
    assert info.gps_altitude_m == pytest.approx(-430.5)
    assert info.raw["GPSAltitudeRef"] == "1"
    assert info.raw["GPSLatitude"] == "31, 30, 0"


def test_capture_time_camera_and_lens() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon\x00"
    exif[0x0110] = "  Canon EOS 5D  "
    exif[0x0131] = "Adobe Lightroom"
    exif[0x0132] = "2020:01:01 00:00:00"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2019:07:14 18:03:22"
    sub[0x9011] = "+02:00"
    sub[0xA434] = "EF24-105mm f/4L IS USM"
    sub[0x927C] = b"\x00\x01" * 500  # MakerNote: binary, must be elided
    info = read_exif(_jpeg_with_exif(exif))
    assert info.capture_time == "2019-07-14T18:03:22+02:00"
    assert info.camera_make == "Canon"
    assert info.camera_model == "Canon EOS 5D"
    assert info.software == "Adobe Lightroom"
    assert info.lens == "EF24-105mm f/4L IS USM"
    assert info.raw["MakerNote"] == "<binary, 1000 bytes>"
    assert all(len(v) <= 200 for v in info.raw.values())
    assert json.dumps(info.to_dict())


def test_capture_time_falls_back_to_datetime_and_rejects_placeholders() -> None:
    exif = Image.Exif()
    exif[0x0132] = "2020:02:29 12:00:00"
    assert read_exif(_jpeg_with_exif(exif)).capture_time == "2020-02-29T12:00:00"
    exif[0x0132] = "0000:00:00 00:00:00"
    assert read_exif(_jpeg_with_exif(exif)).capture_time is None


def test_no_exif_gives_empty_info() -> None:
    info = read_exif(_encode(Image.new("RGB", (4, 4)), "PNG"))
    assert info == ExifInfo()


# --------------------------------------------------------------------------
# iter_image_paths
# --------------------------------------------------------------------------


def test_image_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".heic", ".webp", ".tif", ".avif"} <= IMAGE_EXTENSIONS
    assert ".txt" not in IMAGE_EXTENSIONS


def test_iter_image_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for rel in ["b.PNG", "a.jpg", "notes.txt", "README", ".hidden.jpg", ".git/x.jpg",
                "sub/c.heic", "sub/deeper/d.tif", "sub/data.csv"]:
        path = tmp_path / "album" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    found = iter_image_paths(["album"])
    assert [p.relative_to("album").as_posix() for p in found] == [
        "README", "a.jpg", "b.PNG", "sub/c.heic", "sub/deeper/d.tif",
    ]
    assert [p.name for p in iter_image_paths(["album"], recursive=False)] == ["README", "a.jpg", "b.PNG"]

    # explicit files always count; missing paths and empty globs are kept
    # for the caller to report; duplicates (also via ./) are dropped.
    result = iter_image_paths([
        "album/notes.txt", "missing.jpg", "album/*.jpg", "./album/a.jpg", "nothing/*.png", "album/a.jpg",
    ])
    assert [p.as_posix() for p in result] == [
        "album/notes.txt", "missing.jpg", "album/a.jpg", "nothing/*.png",
    ]

    recursive_glob = iter_image_paths(["album/**/*.tif"])
    assert [p.as_posix() for p in recursive_glob] == ["album/sub/deeper/d.tif"]
    assert iter_image_paths([]) == []
