"""The photo pHash used by fusion's tempering: a re-encoded copy is close, another photo far, junk is None."""

from __future__ import annotations

from PIL import Image

from geoapp.imaging.phash import phash_hex
from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO


def _bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_phash_tells_copies_from_other_photos_and_refuses_junk(tmp_path):
    photo = shared_path("im2gps3k-dev", IM2GPS_PHOTO)
    copy = tmp_path / "copy.jpg"
    Image.open(photo).convert("RGB").resize((320, 240)).save(copy, quality=60)
    original, recoded, other = phash_hex(str(photo)), phash_hex(str(copy)), phash_hex(str(shared_path(*GPS_PHOTO)))
    assert len(original) == 16 and _bits(original, recoded) <= 6 < _bits(original, other)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    assert phash_hex(str(junk)) is None
