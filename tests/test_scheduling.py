"""The suite's guard against an inherited real-time scheduling policy (tests/conftest.py ``_normal_scheduling``)."""

from __future__ import annotations

import os

import pytest

from tests import conftest


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler") or os.geteuid() != 0,
                    reason="setting SCHED_FIFO needs root (CAP_SYS_NICE)")
def test_a_real_time_policy_is_reset_before_a_test_runs():
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    try:
        assert os.sched_getscheduler(0) == os.SCHED_FIFO
        conftest.pytest_runtest_setup(None)  # what pytest calls before setting up each test's fixtures
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
