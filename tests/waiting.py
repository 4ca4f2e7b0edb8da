"""Waiting for another thread or process in a test: a bounded poll, never a fixed sleep."""

import time


def wait_until(condition, timeout: float = 60.0) -> None:
    """Return once `condition()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)
