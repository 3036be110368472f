"""Subprocess workers for the reliability tests (run as ``python -m tests.cases._workers MODE ...``).

* ``concurrent``: add notes and evidence to one case, racing another process.
* ``first-open``: open a fresh database (its migration) at the same moment as other processes.
* ``crash-analysis`` / ``crash-import``: a parent that pays the start-up cost once
  (model, imports), then forks a child per trial; the child loops analyses / bundle
  imports and the parent kills it with SIGKILL at a random moment.  Forking keeps each
  trial well under a second instead of a fresh interpreter's ~10 s.

Each mode prints one JSON line with what it did.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import time

from tests.cases.conftest import png_bytes


def _open(db_url: str, store_dir: str):
    from geoapp.cases import CaseStore

    return CaseStore.open(database_url=db_url, store_dir=store_dir)


def concurrent(db_url: str, store_dir: str, case_id: str, index: int, count: int, go_file: str) -> None:
    from geoapp.cases import DuplicateEvidenceError

    store = _open(db_url, store_dir)
    deadline = time.time() + 60
    while not os.path.exists(go_file) and time.time() < deadline:  # start both writers together
        time.sleep(0.005)
    added = duplicates = notes = 0
    for i in range(count):
        store.add_note(case_id, f"worker {index} note {i}", actor=f"worker-{index}")
        notes += 1
        store.add_evidence(case_id, png_bytes(10_000 * (index + 1) + i), f"w{index}-{i}.png", actor=f"worker-{index}")
        added += 1
        if i == count // 2:
            try:  # both workers add this same file at about the same time
                store.add_evidence(case_id, png_bytes(424242), "shared.png", actor=f"worker-{index}")
                added += 1
            except DuplicateEvidenceError:
                duplicates += 1
    store.close()
    print(json.dumps({"notes": notes, "evidence": added, "duplicates": duplicates}))


def first_open(db_url: str, store_dir: str, go_file: str) -> None:
    from alembic import command  # noqa: F401  (imported before the start: only the migrations race)

    from geoapp.cases import db, models  # noqa: F401

    deadline = time.time() + 60
    while not os.path.exists(go_file) and time.time() < deadline:  # all processes migrate together
        time.sleep(0.001)
    database = db.Database(db_url)
    revision = db.current_revision(database.engine)
    database.dispose()
    print(json.dumps({"revision": revision}))


def _sqlite_check(db_url: str) -> str:
    """PRAGMA integrity_check straight through sqlite3 (no SQLAlchemy engine survives into a fork)."""
    from sqlalchemy.engine import make_url

    if not db_url.startswith("sqlite"):
        return "ok"
    connection = sqlite3.connect(make_url(db_url).database, timeout=30)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def _trials(trials: int, seed: int, window: float, child, check) -> dict:
    """Fork ``trials`` children running ``child()``; SIGKILL each at a random moment of its loop."""
    rng = random.Random(seed)
    kills, checks, delays = 0, [], []
    for trial in range(trials):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            os.close(read_end)
            try:
                child(trial, write_end)
            except BaseException as error:  # report anything unexpected, then die
                print(f"child {trial} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                os._exit(3)
            os._exit(4)
        os.close(write_end)
        ready = os.read(read_end, 1)  # the child has opened the store and started its loop
        os.close(read_end)
        delay = rng.uniform(0.0, window)
        delays.append(round(delay, 3))
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not ready or not os.WIFSIGNALED(status) or os.WTERMSIG(status) != signal.SIGKILL:
            raise SystemExit(f"trial {trial}: child ended on its own (status {status}, ready {ready!r})")
        kills += 1
        checks.append(check())
    return {"trials": trials, "kills": kills, "integrity": checks, "delays": delays}


def crash_analysis(db_url: str, store_dir: str, case_id: str, gallery: str, trials: int, seed: int) -> None:
    import torch

    torch.set_num_threads(1)  # no OpenMP pool in the parent: forked children stay safe
    from geoapp import Geolocator

    locator = Geolocator.load(backbone="tiny-test", backbone_weights="random", device="cpu", gallery=gallery)
    store = _open(db_url, store_dir)
    evidence = [e.id for e in store.get_case(case_id).evidence]
    for tencrop in (False, True):  # warm caches (place index, crops) before forking
        store.run_analysis(case_id, evidence[0], locator, top_k=3, tencrop=tencrop, gradcam=png_bytes(1),
                           actor="warmup")
    start = time.perf_counter()
    store.run_analysis(case_id, evidence[1 % len(evidence)], locator, top_k=3, gradcam=png_bytes(2), actor="warmup")
    one = time.perf_counter() - start
    store.close()  # no open connections across fork

    def child(trial: int, ready_fd: int) -> None:
        child_store = _open(db_url, store_dir)
        os.write(ready_fd, b"r")
        for i in range(10_000):
            child_store.run_analysis(case_id, evidence[i % len(evidence)], locator, top_k=3,
                                     tencrop=i % 3 == 2,
                                     gradcam=png_bytes(trial * 1000 + i), actor=f"trial-{trial}")

    result = _trials(trials, seed, window=max(0.05, 2.5 * one), child=child, check=lambda: _sqlite_check(db_url))
    print(json.dumps({**result, "iteration_s": round(one, 3)}))


def crash_import(db_url: str, store_dir: str, bundle: str, trials: int, seed: int) -> None:
    from geoapp.cases import import_bundle

    store = _open(db_url, store_dir)
    start = time.perf_counter()
    import_bundle(store, bundle, actor="warmup", as_new=True)
    one = time.perf_counter() - start
    store.close()

    def child(trial: int, ready_fd: int) -> None:
        child_store = _open(db_url, store_dir)
        os.write(ready_fd, b"r")
        for _ in range(10_000):
            import_bundle(child_store, bundle, actor=f"trial-{trial}", as_new=True)

    result = _trials(trials, seed, window=max(0.05, 2.5 * one), child=child, check=lambda: _sqlite_check(db_url))
    print(json.dumps({**result, "iteration_s": round(one, 3)}))


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "concurrent":
        concurrent(args[0], args[1], args[2], int(args[3]), int(args[4]), args[5])
    elif mode == "first-open":
        first_open(args[0], args[1], args[2])
    elif mode == "crash-analysis":
        crash_analysis(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]))
    elif mode == "crash-import":
        crash_import(args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
