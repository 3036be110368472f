"""Command line: ``geoapp`` / ``python -m geoapp`` (entry point :func:`geoapp.cli.main.main`).

One module per command group; families add theirs through their spec (``FamilySpec.cli_commands``).
"""
