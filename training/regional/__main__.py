"""``python -m training.regional build|reproduce`` (see :mod:`training.regional.build`)."""

from training.regional.build import main

if __name__ == "__main__":
    raise SystemExit(main())
