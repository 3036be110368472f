"""Starting a local Ray cluster survives one startup timeout (Ray's fixed 30 s for its node on a busy machine)."""

from __future__ import annotations

import pytest

from geoapp.engine.ray_engine import _init_local


class StartsOnTry:
    """Stands in for the ``ray`` module's init/shutdown only (the real cluster start is in test_ray_engine.py)."""

    def __init__(self, failures: int, message: str = "The current node timed out during startup. This could happen"):
        self.failures, self.message, self.calls = failures, message, []

    def init(self, **options):
        self.calls.append(("init", options))
        if self.failures:
            self.failures -= 1
            raise Exception(self.message)

    def shutdown(self):
        self.calls.append(("shutdown", {}))


def test_a_startup_timeout_is_retried_once_after_cleaning_up(capsys):
    ray = StartsOnTry(failures=1)
    _init_local(ray, num_cpus=1)
    assert [name for name, _ in ray.calls] == ["init", "shutdown", "init"]
    assert ray.calls[2][1] == {"num_cpus": 1} and "trying once more" in capsys.readouterr().err


def test_a_second_timeout_or_another_error_is_raised():
    with pytest.raises(Exception, match="timed out during startup"):
        _init_local(StartsOnTry(failures=2), num_cpus=1)
    other = StartsOnTry(failures=1, message="no space left on device")
    with pytest.raises(Exception, match="no space left"):
        _init_local(other, num_cpus=1)
    assert [name for name, _ in other.calls] == ["init"]
