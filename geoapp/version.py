"""The version of geoapp (bottom layer: anything may import it)."""

__version__ = "0.1.0"
