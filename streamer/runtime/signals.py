"""How every process of ours is asked to stop: SIGINT and SIGTERM set one stop event."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event, what: str = "",
                    also: Optional[Callable[[], None]] = None) -> None:
    """Install handlers (main thread only) that set ``stop`` and then call ``also()`` (e.g. a
    pipeline's ``stop``). The handler only sets flags, so it runs at once even while the main
    thread waits on a blocked build; ``what`` names the process in the one log line."""

    def _handler(signum, _frame):
        if what:
            log.info("signal %d: stopping %s", signum, what)
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
