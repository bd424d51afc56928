"""Waiting on a condition with a deadline (never a bare sleep for a thread or process)."""

import time


def wait_until(pred, timeout: float, what: str, poll: float = 0.2):
    """``pred()``'s first truthy value, polled every ``poll`` s; AssertionError naming ``what``
    after ``timeout`` s. The timeout is a hang bound, not a speed claim."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
