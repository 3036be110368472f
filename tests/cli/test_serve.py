"""``geoapp serve`` end to end: real worker processes, real ``geoapp predict`` processes, results compared with
in-process prediction (``--no-worker``) of the same inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from geoapp.cli.worker import protocol

from ..conftest import REPO, shared_path
from .conftest import TINY_GEOCLIP, env_for, geoapp, start_worker

EXIT_BOUND_S = 300.0


def _photos(tmp_path, count: int = 3) -> tuple[list[str], object]:
    """Relative paths (from a working directory the worker does not share) to shared photos, a broken file and
    a missing one: the worker must resolve them where the caller stands and report the same errors."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for photo in sorted(shared_path("streetview").glob("*.jpg"))[:count]:
        shutil.copy(photo, folder / photo.name)
    (folder / "broken.jpg").write_bytes(b"not a JPEG at all")
    return ["inputs", "missing.jpg"], tmp_path


def _json_without_timings(text: str) -> list[dict]:
    data = json.loads(text)
    for item in data:
        item.pop("timings_ms")
    return data


def _records_without_timings(folder) -> list[dict]:
    from geoapp.engine.output import read_records

    records = read_records(folder)
    for record in records:
        record.pop("timings_json")
    return sorted(records, key=lambda r: r["input"])


def _compare_with_in_process(worker, model_args: list[str], tmp_path, formats=("json", "csv")) -> None:
    paths, cwd = _photos(tmp_path)
    for fmt in formats:
        served = geoapp("predict", *model_args, *paths, "--format", fmt, env=worker.env, cwd=cwd)
        local = geoapp("predict", *model_args, *paths, "--format", fmt, "--no-worker", env=worker.env, cwd=cwd)
        assert served.returncode == local.returncode == 0, served.stderr + local.stderr
        assert "Using the local worker" in served.stderr and "Using the local worker" not in local.stderr
        assert "Loading" not in served.stderr and "Loading" in local.stderr
        if fmt == "json":
            served_data, local_data = _json_without_timings(served.stdout), _json_without_timings(local.stdout)
            assert [d["ok"] for d in served_data] == [True, True, True, False, False]  # photos, broken, missing
            assert served_data == local_data
        else:
            assert served.stdout == local.stdout
        assert served.stderr.splitlines()[-3:] == local.stderr.splitlines()[-3:]  # summary and failures
    served = geoapp("predict", *model_args, *paths, "-o", "served.jsonl", env=worker.env, cwd=cwd)
    local = geoapp("predict", *model_args, *paths, "-o", "local.jsonl", "--no-worker", env=worker.env, cwd=cwd)
    assert served.returncode == local.returncode == 0, served.stderr + local.stderr
    assert "Using the local worker" in served.stderr
    served_records, local_records = _records_without_timings(cwd / "served.jsonl"), \
        _records_without_timings(cwd / "local.jsonl")
    assert len(served_records) == 5 and served_records == local_records


def test_satworld_worker_gives_the_records_of_in_process_predict(satworld_worker, tmp_path):
    before = satworld_worker.requests()
    _compare_with_in_process(satworld_worker, ["--model", "satworld"], tmp_path, formats=("json",))
    assert satworld_worker.requests() == before + 2  # json, and the one chunk of jsonl


def test_tiny_geoclip_worker_gives_the_records_of_in_process_predict(tiny_geoclip_worker, tmp_path):
    _compare_with_in_process(tiny_geoclip_worker, TINY_GEOCLIP, tmp_path)


def test_a_worker_with_other_model_options_is_not_used(satworld_worker, tiny_locator):
    tiny_locator.candidate_set()  # the in-process tiny GeoCLIP call finds its gallery embeddings cached
    photo = str(sorted(shared_path("streetview").glob("*.jpg"))[0])
    before = satworld_worker.requests()
    other_device = geoapp("predict", "--model", "satworld", "--device", "cpu", photo, env=satworld_worker.env)
    assert other_device.returncode == 0, other_device.stderr
    assert "runs other model options (differs in: device)" in other_device.stderr
    assert "Loading satworld" in other_device.stderr
    other_family = geoapp("predict", *TINY_GEOCLIP, photo, env=satworld_worker.env)
    assert other_family.returncode == 0 and "differs in: " in other_family.stderr
    assert "family" in other_family.stderr.split("differs in: ")[1].split(")")[0]
    assert satworld_worker.requests() == before


def test_the_caller_imports_no_torch_when_the_worker_answers(satworld_worker):
    photo = str(sorted(shared_path("streetview").glob("*.jpg"))[0])
    code = ("import sys; from geoapp.cli.main import main; rc = main(['predict', '--model', 'satworld', "
            f"{photo!r}]); print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules), "
            "file=sys.stderr); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=satworld_worker.env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Using the local worker" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_files_are_private_and_callers_must_hold_the_token(satworld_worker):
    folder = satworld_worker.serve_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("default.sock", "default.token", "default.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert stat.S_ISSOCK((folder / "default.sock").stat().st_mode)
    state = protocol.read_state(satworld_worker.state_file)
    with protocol.connect(state["address"], timeout=30) as sock:
        with pytest.raises(protocol.AuthenticationError):
            protocol.client_handshake(sock, b"\0" * protocol.TOKEN_BYTES)
    with protocol.connect(state["address"], timeout=30) as sock:  # not the protocol at all: dropped
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    token = protocol.read_token(protocol.WorkerFiles(folder))
    with protocol.connect(state["address"], timeout=30) as sock:  # still serving the token's holder
        protocol.client_handshake(sock, token)
        protocol.send_message(sock, {"op": "status"})
        reply = protocol.recv_message(sock, protocol.MAX_STATE_BYTES)
    assert reply["ok"] and reply["status"]["pid"] == satworld_worker.process.pid


def test_tcp_worker_status_and_stop(tmp_path, tiny_locator):
    tiny_locator.candidate_set()
    worker = start_worker(tmp_path / "serve", *TINY_GEOCLIP, "--tcp", "127.0.0.1:0", name="tcp")
    try:
        state = protocol.read_state(worker.state_file)
        host, port = state["address"]["tcp"]
        assert host == "127.0.0.1" and port > 0
        assert not (worker.serve_dir / "tcp.sock").exists()
        photo = str(sorted(shared_path("streetview").glob("*.jpg"))[0])
        served = geoapp("predict", *TINY_GEOCLIP, photo, env=worker.env)
        assert served.returncode == 0 and f"tcp 127.0.0.1:{port}" in served.stderr
        assert json.loads(served.stdout)[0]["ok"]
        status = geoapp("serve", "--status", env=worker.env)
        assert status.returncode == 0 and "tcp: pid" in status.stdout and "1 call(s)" in status.stdout
        stopped = geoapp("serve", "--stop", "--name", "tcp", env=worker.env)
        assert stopped.returncode == 0, stopped.stderr
        assert worker.process.wait(timeout=EXIT_BOUND_S) == 0
        assert not worker.state_file.exists() and not (worker.serve_dir / "tcp.token").exists()
        assert geoapp("serve", "--status", env=worker.env).returncode == 3
        assert geoapp("serve", "--stop", "--name", "tcp", env=worker.env).returncode == 3
    finally:
        worker.stop()


def test_a_dead_worker_falls_back_to_in_process_with_one_line(tmp_path, tiny_locator):
    tiny_locator.candidate_set()
    worker = start_worker(tmp_path / "serve", *TINY_GEOCLIP, name="gone")
    worker.process.send_signal(signal.SIGKILL)  # no clean-up: socket, token and state stay behind
    worker.process.wait(timeout=EXIT_BOUND_S)
    assert (worker.serve_dir / "gone.sock").exists() and worker.state_file.exists()
    photo = str(sorted(shared_path("streetview").glob("*.jpg"))[0])
    result = geoapp("predict", *TINY_GEOCLIP, photo, env=worker.env)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "worker" in line]
    assert len(notes) == 1 and "'gone'" in notes[0] and "predicting in this process" in notes[0], result.stderr
    assert json.loads(result.stdout)[0]["ok"]
    assert not worker.state_file.exists()  # cleaned up: the next call is quiet
    again = geoapp("predict", *TINY_GEOCLIP, photo, env=worker.env)
    assert "worker" not in again.stderr


def test_the_worker_stops_after_its_idle_timeout(tmp_path, tiny_locator):
    tiny_locator.candidate_set()
    worker = start_worker(tmp_path / "serve", *TINY_GEOCLIP, "--idle-timeout", "1", name="idle")
    try:
        assert worker.process.wait(timeout=EXIT_BOUND_S) == 0
        assert "no call for 1 s, stopping" in worker.log.read_text()
        assert not worker.state_file.exists() and not (worker.serve_dir / "idle.sock").exists()
    finally:
        worker.stop()


def test_serve_refuses_non_loopback_tcp_and_a_taken_name(satworld_worker, tmp_path):
    refused = geoapp("serve", "--model", "satworld", "--tcp", "0.0.0.0:8765", env=env_for(tmp_path / "serve"))
    assert refused.returncode == 2 and "127.0.0.1" in refused.stderr and "Loading" not in refused.stderr
    taken = geoapp("serve", "--model", "satworld", env=satworld_worker.env)
    assert taken.returncode == 1 and "already running" in taken.stderr and "Loading" not in taken.stderr


def test_a_worker_failing_mid_call_falls_back_with_one_line(tmp_path):
    """A process that holds the token and the identity but drops the connection once the request arrives (what a
    worker crashing mid-call looks like to the caller)."""
    import socket
    import threading

    from geoapp.cli.main import build_parser
    from geoapp.cli.worker.identity import model_identity

    photo = str(sorted(shared_path("streetview").glob("*.jpg"))[0])
    serve_dir = tmp_path / "serve"
    env = env_for(serve_dir)
    files = protocol.WorkerFiles(protocol.private_dir(serve_dir), "crashy")
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the identity as the predict process will compute it
    try:
        identity = json.loads(json.dumps(model_identity(build_parser().parse_args(["predict", "--model", "satworld",
                                                                                    photo]))))
    finally:
        for key, value in previous.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    token = protocol.new_token()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(files.socket))
    listener.listen(1)
    seen: list[dict] = []

    def crash_after_request() -> None:
        conn, _ = listener.accept()
        with conn:
            protocol.server_handshake(conn, bytes.fromhex(token))
            seen.append(protocol.recv_message(conn, protocol.MAX_REQUEST_BYTES))

    thread = threading.Thread(target=crash_after_request, daemon=True)
    thread.start()
    protocol.write_private(files.token, token)
    protocol.write_private(files.state, json.dumps({"pid": os.getpid(), "address": {"unix": str(files.socket)},
                                                   "identity": identity, "model": {"family": "satworld"}}))
    try:
        result = geoapp("predict", "--model", "satworld", photo, env=env)
    finally:
        listener.close()
        thread.join(timeout=60)
    assert seen and seen[0]["op"] == "predict" and seen[0]["keys"] == [photo]
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "worker" in line and line.startswith("NOTE")]
    assert len(notes) == 1 and "failed mid-call" in notes[0] and "predicting in this process" in notes[0]
    assert "Loading satworld" in result.stderr
    assert json.loads(result.stdout)[0]["ok"]
