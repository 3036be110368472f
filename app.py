"""geoapp's analyst web UI: ``python app.py`` serves it on http://127.0.0.1:7860.

Flags: ``--host`` (a non-loopback address needs a login: ``--auth-file``, ``$GEOAPP_AUTH`` or
``--auth``), ``--port``, ``--share``, ``--offline-map``, ``--weights-dir``, ``--backbone-weights
random``, ``--device``. The model loads on first use, so the page is up in seconds. See
``python app.py --help``.
"""

from __future__ import annotations

import os
import sys

# Before anything imports gradio: no usage analytics, no version check, no hub telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main(argv: list[str] | None = None) -> int:
    from geoapp.ui.launch import run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
