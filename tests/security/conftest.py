"""Hostile-input tests reuse the UI's running app (tiny random model, offline map, 127.0.0.1)."""

from tests.ui.conftest import running_app  # noqa: F401  (a fixture)
