"""The worker's protocol and identity without a model: addresses, message caps, mutual authentication, private
files, and what makes two model set-ups differ."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from geoapp.cli.main import build_parser
from geoapp.cli.worker import protocol
from geoapp.cli.worker.identity import differences, model_identity

from ..conftest import REPO


@pytest.mark.parametrize("text, expected", [
    ("0", ("127.0.0.1", 0)), ("8765", ("127.0.0.1", 8765)), ("127.0.0.1:8765", ("127.0.0.1", 8765)),
    ("localhost:9", ("127.0.0.1", 9)), ("[::1]:8765", ("::1", 8765)),
])
def test_tcp_addresses_on_loopback_are_accepted(text, expected):
    assert protocol.parse_tcp(text) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:8765", "192.168.1.2:80", "example.org:80", "[::]:1", "127.0.0.1:x",
                                  "127.0.0.1:70000"])
def test_other_hosts_and_bad_ports_are_refused(text):
    with pytest.raises(ValueError, match="--tcp"):
        protocol.parse_tcp(text)


def test_connect_refuses_a_non_loopback_address_from_a_state_file():
    with pytest.raises(OSError, match="loopback"):
        protocol.connect({"tcp": ["10.0.0.1", 80]}, timeout=1)


def test_an_oversized_message_is_refused_before_it_is_read():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(protocol.HEADER.pack(10 ** 9))  # announces 1 GB, sends nothing more
        with pytest.raises(protocol.ProtocolError, match="more than"):
            protocol.recv_message(right, max_bytes=1024)


@pytest.mark.parametrize("payload", [b"[1, 2]", b"\xff\xfe", b"{not json"])
def test_anything_but_a_json_object_is_a_protocol_error(payload):
    left, right = socket.socketpair()
    with left, right:
        left.sendall(protocol.HEADER.pack(len(payload)) + payload)
        with pytest.raises(protocol.ProtocolError):
            protocol.recv_message(right, max_bytes=1024)


def test_send_refuses_a_message_over_its_cap():
    left, right = socket.socketpair()
    with left, right:
        with pytest.raises(protocol.MessageTooLarge):
            protocol.send_message(left, {"text": "x" * 100}, max_bytes=50)


def _handshake(server_token: bytes, client_token: bytes):
    left, right = socket.socketpair()
    outcome: dict = {}

    def serve() -> None:
        try:
            protocol.server_handshake(left, server_token)
            outcome["server"] = "ok"
        except protocol.ProtocolError as error:
            outcome["server"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        protocol.client_handshake(right, client_token)
        outcome["client"] = "ok"
    except protocol.ProtocolError as error:
        outcome["client"] = error
    thread.join(timeout=30)
    left.close()
    right.close()
    return outcome


def test_both_sides_holding_the_token_authenticate():
    token = bytes.fromhex(protocol.new_token())
    assert _handshake(token, token) == {"server": "ok", "client": "ok"}


def test_a_client_without_the_token_is_refused_and_learns_so():
    outcome = _handshake(bytes.fromhex(protocol.new_token()), bytes.fromhex(protocol.new_token()))
    assert isinstance(outcome["server"], protocol.AuthenticationError)
    assert isinstance(outcome["client"], protocol.AuthenticationError)


def test_private_files_are_0600_and_others_files_are_refused(tmp_path):
    folder = protocol.private_dir(tmp_path / "serve")
    assert folder.stat().st_mode & 0o777 == 0o700
    path = folder / "x.token"
    protocol.write_private(path, protocol.new_token())
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(protocol.read_token(protocol.WorkerFiles(folder, "x"))) == protocol.TOKEN_BYTES
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="other users"):
        protocol.read_token(protocol.WorkerFiles(folder, "x"))


def test_an_open_serve_folder_is_tightened(tmp_path):
    folder = tmp_path / "serve"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    protocol.private_dir(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "x" * 65, "a b"])
def test_worker_names_are_plain(name):
    with pytest.raises(ValueError, match="worker name"):
        protocol.check_name(name)


def _identity(*argv: str) -> dict:
    return json.loads(json.dumps(model_identity(build_parser().parse_args(["predict", *argv, "photo.jpg"]))))


def test_identity_follows_the_model_options_and_not_the_call_options():
    base = _identity("--model", "satworld")
    assert base == _identity("--model", "satworld", "--top-k", "3", "--tencrop", "--region", "FR")
    assert differences(base, _identity("--model", "satworld", "--device", "cpu")) == ["device"]
    assert "family_options" in differences(base, _identity("--model", "satworld", "--refine-km", "5"))
    assert {"family", "weights"} <= set(differences(base, _identity("--model", "geoclip")))


def test_identity_changes_when_a_weight_file_changes(tmp_path, monkeypatch):
    checkpoint = tmp_path / "satworld.pt"
    checkpoint.write_bytes((REPO / "assets" / "satworld" / "satworld.pt").read_bytes())
    monkeypatch.chdir(tmp_path)  # a relative --checkpoint is made absolute
    first = _identity("--model", "satworld", "--checkpoint", "satworld.pt")
    assert first["checkpoint"] == str(checkpoint)
    os.utime(checkpoint, ns=(0, checkpoint.stat().st_mtime_ns + 10 ** 9))  # replaced since a worker loaded it
    assert differences(first, _identity("--model", "satworld", "--checkpoint", str(checkpoint))) == ["weights"]


def test_identity_follows_the_environment_that_steers_loading(monkeypatch):
    base = _identity("--model", "satworld")
    monkeypatch.setenv("GEOAPP_SERVE_DIR", "/elsewhere")  # where workers are found: not the model
    monkeypatch.setenv("GEOAPP_ACTOR", "someone")
    assert _identity("--model", "satworld") == base
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", "/somewhere")
    assert differences(base, _identity("--model", "satworld")) == ["environment"]
