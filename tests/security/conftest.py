"""Hostile-input tests reuse the UI's running app (tiny random model, offline map, 127.0.0.1) and
the case-store fixtures (a fresh store per test)."""

from tests.cases.conftest import backend, db_url, make_db_url, store  # noqa: F401  (fixtures)
from tests.ui.conftest import running_app  # noqa: F401  (a fixture)
