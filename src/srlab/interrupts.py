"""Ctrl-C during training, honoured between steps.

Python raises KeyboardInterrupt at whatever bytecode the main thread is on, including the one
between a lock's release and the next (in ThreadPoolExecutor.submit, tqdm, logging). A process
interrupted there waits for that lock for ever when it exits: a Ctrl-C once hung a training stage
that way. So while training runs, the first SIGINT only asks for a stop, which the loop honours at
its next step, where no lock is held; a second SIGINT interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def deferred() -> Iterator[Callable[[], None]]:
    """Yield `honour()`, which raises KeyboardInterrupt if Ctrl-C was pressed since the block began.
    Only where Python's own handler is in place, in the main thread; elsewhere `honour` does nothing
    and SIGINT behaves as it did."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield lambda: None
        return
    asked = False

    def ask(signum, frame):
        nonlocal asked
        if asked:
            raise KeyboardInterrupt  # the second Ctrl-C: the user means now
        asked = True

    def honour():
        if asked:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, ask)
    try:
        yield honour
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
