"""``python -m geoapp``: see :mod:`geoapp.cli`."""

import sys

from geoapp.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
