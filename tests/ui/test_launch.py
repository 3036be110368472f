"""Starting the app: --weights-dir, credentials without the process list, a busy port, Gradio's banner."""

from __future__ import annotations

import socket

import pytest

from geoapp.ui.config import AUTH_ENV, ConfigError, config_from_args
from geoapp.ui.launch import port_problem, run_app


def test_weights_dir_flag_means_what_the_cli_means(tmp_path, monkeypatch):
    config = config_from_args(["--weights-dir", str(tmp_path)])
    assert config.weights_dir == tmp_path
    with pytest.raises(ConfigError, match="not a folder"):
        config_from_args(["--weights-dir", str(tmp_path / "absent")])
    # run_app puts it where every weight lookup reads it (geoapp.settings), then stops at the busy port.
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert run_app(["--weights-dir", str(tmp_path), "--port", str(busy.getsockname()[1])]) == 2
    from geoapp.settings import get_settings

    assert get_settings().weights_dir == tmp_path


def test_busy_port_is_one_line_suggesting_another(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_app(["--port", str(port)]) == 2
        assert port_problem("127.0.0.1", port) is not None
    err = capsys.readouterr().err
    assert err.startswith("error: port") and "already in use" in err and f"--port {port + 1}" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_credentials_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTH_ENV, raising=False)
    secret = tmp_path / "auth.txt"
    secret.write_text("# analysts\n\nanalyst:long:passphrase\n")
    assert config_from_args(["--host", "0.0.0.0", "--auth-file", str(secret)]).auth == ("analyst", "long:passphrase")
    secret.write_text("no-colon\n")
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        config_from_args(["--auth-file", str(secret)])
    with pytest.raises(ConfigError, match="cannot read"):
        config_from_args(["--auth-file", str(tmp_path / "missing")])
    monkeypatch.setenv(AUTH_ENV, "env-user:env-pass")
    assert config_from_args(["--host", "0.0.0.0"]).auth == ("env-user", "env-pass")
    with pytest.raises(ConfigError, match="only one"):
        config_from_args(["--auth", "a:b"])


def test_upload_and_session_limits_are_flags():
    config = config_from_args(["--max-file-mb", "20", "--max-upload-mb", "50", "--max-sessions", "8",
                               "--allowed-origin", "https://proxy.example/"])
    assert (config.max_file_size, config.max_request_mb, config.max_sessions) == ("20mb", 50, 8)
    assert config.allowed_origins == ("https://proxy.example",)
    with pytest.raises(ConfigError, match="--allowed-origin"):
        config_from_args(["--allowed-origin", "proxy.example"])
    with pytest.raises(ConfigError, match="--max-sessions"):
        config_from_args(["--max-sessions", "0"])


def wait_for_log(app, text: str, timeout_s: float) -> str:
    """The app's log once it contains ``text`` (or at the deadline): the page may answer a moment before
    ``app.py`` prints its banner, and the warm-up ends when the machine lets it."""
    import time

    deadline = time.monotonic() + timeout_s
    while text not in app.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    return app.log()


def test_banner_names_the_address_and_not_share(running_app):
    log = wait_for_log(running_app, "geoapp is running on", 60)
    assert f"geoapp is running on {running_app.url}" in log
    assert "share=True" not in log and "public link" not in log.lower()


def test_the_default_model_is_prepared_in_the_background_once_the_server_listens(running_app):
    """The warm-up starts after the page answers and says when the model is ready (it may take minutes on a
    busy machine: only its completion is checked, never its duration)."""
    log = wait_for_log(running_app, "GeoCLIP is ready (", 600)
    assert "geoapp: preparing GeoCLIP in the background" in log and "GeoCLIP is ready (" in log, log[-2000:]
    assert log.index("geoapp is running on") < log.index("preparing GeoCLIP")  # the page first, then the model
