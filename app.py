"""geoapp's analyst web UI: ``python app.py`` serves it on http://127.0.0.1:7860.

Flags: ``--host`` (a non-loopback address needs ``--auth USER:PASSWORD``), ``--port``,
``--share``, ``--auth``, ``--offline-map``, ``--backbone-weights random``, ``--device``.
The model loads on first use, so the page is up in seconds. See ``python app.py --help``.
"""

from __future__ import annotations

import os
import sys

# Before anything imports gradio: no usage analytics, no version check, no hub telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main(argv: list[str] | None = None) -> int:
    from geoapp.ui.config import ConfigError, config_from_args

    try:
        config = config_from_args(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from geoapp.ui.app import build_app

    demo, launch_kwargs = build_app(config)
    demo.launch(**launch_kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
