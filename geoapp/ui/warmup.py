"""Loading the default model in the background as the app starts (no Gradio here).

On a fresh install the first result used to wait for the model to load and, for the retrieval families,
for the gallery's location embeddings to be computed (100K points: about a minute on a 2-core CPU; cached on
disk afterwards). :class:`Warmup` starts that work when the app starts, like the offline tile pyramid; a
request that needs the model meanwhile waits for it and shows its progress instead of loading it twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
POLL_S = 0.25  # how often a waiting request relays the warm-up's latest progress message


class Warmup:
    """One model being loaded (and its candidates prepared) in a daemon thread."""

    def __init__(self, model: str, load: Callable[[Progress], object],
                 announce: Callable[[str], None] | None = None, label: str | None = None) -> None:
        self.model = model
        self.label = label or model
        self.error: BaseException | None = None
        self.seconds: float | None = None  # how long it took, once done
        self._load = load
        self._announce = announce or (lambda _message: None)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[float, str] = (0.0, f"Preparing {self.label} (started with the app) …")
        self._thread = threading.Thread(target=self._run, name=f"geoapp-warmup-{model}", daemon=True)

    def start(self) -> Warmup:
        self._announce(f"preparing {self.label} in the background (on a fresh install this includes encoding its "
                       "gallery, once)")
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _report(self, fraction: float, message: str) -> None:
        with self._lock:
            self._latest = (float(fraction), message)

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            self._load(self._report)
        except Exception as error:  # noqa: BLE001 - the request that needs the model loads it again and says why
            self.error = error
            log.warning("preparing %s in the background failed: %s", self.label, error)
        finally:
            self.seconds = time.perf_counter() - start
            self._done.set()
        if self.error is None:
            self._announce(f"{self.label} is ready ({self.seconds:.1f} s after the server started listening)")
        else:
            self._announce(f"{self.label} could not be prepared in the background ({self.error}); it loads on first use")

    def wait(self, progress: Progress) -> None:
        """Block until the warm-up ends, relaying each new progress message to ``progress``."""
        shown = None
        while not self._done.wait(POLL_S):
            with self._lock:
                latest = self._latest
            if latest != shown:
                progress(*latest)
                shown = latest
