"""Fixtures for the case-store tests.

Every store test runs on SQLite; it runs again on PostgreSQL when
``GEOAPP_TEST_DATABASE_URL`` names a server (e.g. ``postgresql+psycopg://user@host/db``):
each test then gets a fresh database created next to that one, dropped afterwards.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..conftest import shared_path

PG_ENV = "GEOAPP_TEST_DATABASE_URL"


def gps_photos(count: int = 2) -> list[Path]:
    """The first ``count`` GPS-tagged sample photos from ../shared/data/exif-samples/jpg/gps."""
    photos = sorted(shared_path("exif-samples", "jpg", "gps").glob("*.jpg"))[:count]
    if len(photos) < count:
        pytest.skip("not enough GPS sample photos in ../shared")
    return photos


def png_bytes(seed: int, size: int = 48) -> bytes:
    """A small, distinct PNG for seed ``seed``."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def fake_prediction(sha256: str, points: list[tuple[float, float, float]]):
    """A Prediction with a known surface ``points`` = [(lat, lon, probability)] for ``sha256``."""
    from geoapp.results.prediction import build_prediction

    lat, lon, prob = (np.array(v, dtype=np.float64) for v in zip(*points))
    prediction = build_prediction("x", lat, lon, prob, top_k=3, merge_km=1.0)
    prediction.image = {"sha256": sha256}
    prediction.model = {"model": "geoclip", "backbone": "test", "backbone_weights": "fixed", "heads_sha256": "ab" * 32,
                        "random_weights": False}
    prediction.parameters = {"top_k": 3, "tencrop": False, "region": None}
    return prediction


def populated_case(store, title: str = "Populated", photos: int = 2, actor: str = "alice") -> str:
    """A case with evidence, a claim, an analysis per photo (fake, known surface), a note and a verdict."""
    case = store.create_case(title, "description", actor=actor)
    store.add_claim(case.id, "circle:49.98,36.25,50", claimed_time="2008-10-20", source="https://example.test/p",
                    actor=actor)
    for index, photo in enumerate(gps_photos(photos)):
        evidence = store.add_evidence_file(case.id, photo, actor=actor)
        points = [(50.45, 30.52, 0.5), (49.99, 36.23, 0.3), (43.47, 11.88, 0.2)]
        store.record_analysis(case.id, evidence.id, fake_prediction(evidence.sha256, points),
                              gradcam=png_bytes(100 + index), actor=actor)
    store.add_note(case.id, "A note", actor=actor)
    store.set_verdict(case.id, "contradicted", "EXIF GPS says Italy", actor=actor)
    return case.id


class PgDatabases:
    """Creates throw-away PostgreSQL databases on the server named by GEOAPP_TEST_DATABASE_URL."""

    def __init__(self, admin_url: str) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.admin_url = sa.engine.make_url(admin_url)
        self.engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def new(self) -> str:
        name = f"geoapp_test_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not os.environ.get(PG_ENV):
        pytest.skip(f"set {PG_ENV} to run the case-store tests on PostgreSQL too")
    return request.param


@pytest.fixture
def make_db_url(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty database URLs for the current backend."""
    if backend == "sqlite":
        counter = iter(range(1000))
        yield lambda: f"sqlite:///{tmp_path / f'cases-{next(counter)}.db'}"
        return
    pg = PgDatabases(os.environ[PG_ENV])
    try:
        yield pg.new
    finally:
        pg.drop_all()


@pytest.fixture
def db_url(make_db_url: Callable[[], str]) -> str:
    return make_db_url()


@pytest.fixture
def store(db_url: str, tmp_path: Path):
    from geoapp.cases import CaseStore

    opened = CaseStore.open(database_url=db_url, store_dir=tmp_path / "evidence")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def small_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-point gallery CSV (fast analyses for crash tests), incl. points near Kharkiv and Tuscany."""
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.uniform(-55, 70, 380), 49.98 + rng.normal(0, 0.1, 10), 43.46 + rng.normal(0, 0.1, 10)])
    lon = np.concatenate([rng.uniform(-180, 180, 380), 36.25 + rng.normal(0, 0.1, 10), 11.88 + rng.normal(0, 0.1, 10)])
    path = tmp_path_factory.mktemp("gallery") / "small.csv"
    path.write_text("LAT,LON\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(lat, lon)))
    return path


@pytest.fixture(scope="session")
def small_locator(small_gallery: Path, _isolated_cache):
    """Tiny random backbone, real heads, small gallery: a prediction in ~50 ms."""
    from geoapp import Geolocator

    return Geolocator.load(backbone="tiny-test", backbone_weights="random", device="cpu", gallery=str(small_gallery))
