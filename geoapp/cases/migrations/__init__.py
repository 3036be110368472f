"""Alembic migrations of the case store (run programmatically by :mod:`geoapp.cases.db`)."""
