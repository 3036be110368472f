"""Time to the first result on a fresh install (issue 26, item 13): ``python app.py`` started with an empty
``GEOAPP_CACHE_DIR`` (so the default model's gallery embeddings are not cached yet), one photo sent to the
``/locate`` API (``gradio_client``) once the page answers. Each scenario gets its own empty cache and app process.

- ``on-demand``: ``--no-preload`` (how the app behaved before): the first Locate loads the model and encodes the
  gallery (100K points for GeoCLIP / SatWorld) before it can answer.
- ``preload, Locate at once``: the app prepares the default model in the background as it starts; Locate is
  pressed the moment the page answers (the worst case: it waits for what is left of the warm-up).
- ``preload, Locate after D s``: the same, Locate pressed ``--delay`` seconds after the page answered (an analyst
  choosing a photo); when the warm-up is done by then, this is the time of a warm prediction.
- ``preload, Locate once ready``: Locate pressed as soon as the app's log says the warm-up is done (an analyst
  who took longer than the warm-up): the first result is then a warm prediction.

Also: the warm-up's own duration (the app's ``... is ready (X s after the server started listening)`` log
line; it starts when the server listens, so page start-up + X is when the model was ready), and the machine
with its load averages before and after, as every benchmark here records.

    python benchmarks/bench_first_result.py [--photo PATH] [--delay 60] [--model auto] [--json OUT]
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine

DEFAULT_PHOTO = REPO.parent / "shared" / "data" / "im2gps3k-dev" / "1008845063_ace4ef829f_1204_97522422@N00.jpg"
READY = re.compile(r"is ready \(([\d.]+) s after the server started listening\)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], cache: Path, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Start app.py with an empty cache; (process, url, seconds until the page answered)."""
    port = free_port()
    env = {**os.environ, "GEOAPP_CACHE_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "GEOAPP_DATA_DIR": str(cache / "data")}
    log = open(log_path, "w")
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--offline-map", *args],
                               cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url, time.perf_counter() - began
        except OSError:
            time.sleep(0.2)


def first_result(url: str, photo: Path, model: str) -> float:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    began = time.perf_counter()
    result = client.predict(photos=[handle_file(str(photo))], top_k=5, model=model, api_name="/locate")
    seconds = time.perf_counter() - began
    if not result["results"] or not result["results"][0].get("candidates"):
        raise RuntimeError(f"no candidates: {result}")
    return seconds


def warmup_seconds(log_path: Path, timeout_s: float = 0.0) -> float | None:
    deadline = time.monotonic() + timeout_s
    while True:
        match = READY.search(log_path.read_text(errors="replace"))
        if match or time.monotonic() >= deadline:
            return float(match.group(1)) if match else None
        time.sleep(1.0)


def scenario(name: str, args: list[str], delay_s: float, photo: Path, model: str, work: Path,
             when_ready: bool = False) -> dict:
    cache = work / name.replace(" ", "-").replace(",", "")
    cache.mkdir(parents=True)
    log_path = cache / "app.log"
    process, url, startup = start(args, cache, log_path)
    try:
        if delay_s:
            time.sleep(delay_s)  # the analyst choosing a photo (part of the scenario, not a wait for a condition)
        if when_ready:
            began = time.perf_counter()
            if warmup_seconds(log_path, timeout_s=1800) is None:
                raise RuntimeError(f"the warm-up did not finish:\n{log_path.read_text()}")
            delay_s = round(time.perf_counter() - began, 1)
        seconds = first_result(url, photo, model)
        warm = warmup_seconds(log_path, timeout_s=600 if "--no-preload" not in args else 0)
    finally:
        process.terminate()
        process.wait(timeout=30)
    row = {"scenario": name, "page_answers_s": round(startup, 1), "locate_pressed_after_s": delay_s,
           "first_result_s": round(seconds, 1), "from_start_to_result_s": round(startup + delay_s + seconds, 1),
           "warmup_s": warm}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> int:
    parser = bench_parser(__doc__.split("\n\n")[0], device=False)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--delay", type=float, default=60.0, help="seconds from page-up to Locate in the last scenario")
    parser.add_argument("--model", default="auto", help="model key for /locate (default auto: what the app picks)")
    args = parser.parse_args()
    report = {"machine": machine(), "load_before": load_average(),
              "command": " ".join(["python", "benchmarks/bench_first_result.py", *sys.argv[1:]]), "rows": []}
    with tempfile.TemporaryDirectory(prefix="geoapp-first-result-") as folder:
        work = Path(folder)
        report["rows"].append(scenario("on-demand (--no-preload)", ["--no-preload"], 0.0, args.photo, args.model, work))
        report["rows"].append(scenario("preload, Locate at once", [], 0.0, args.photo, args.model, work))
        report["rows"].append(scenario(f"preload, Locate after {args.delay:g} s", [], args.delay, args.photo, args.model,
                                       work))
        report["rows"].append(scenario("preload, Locate once ready", [], 0.0, args.photo, args.model, work,
                                       when_ready=True))
    report["load_after"] = load_average()
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
