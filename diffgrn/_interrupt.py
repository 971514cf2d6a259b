"""Ctrl-C at safe points: never half-way through a write, never lost."""

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and deliver it when the block
    ends, so a file or folder being written is finished (or its error raised) before the
    interrupt; nested blocks hold to the outermost. Outside the main thread, or where
    the interrupt is not Python's, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGINT)
    if not callable(old):  # ignored, or the default (the process ends): nothing to hold
        yield
        return
    got: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            signal.raise_signal(signal.SIGINT)  # to the handler before: raised now, or held


def keep_swallowed() -> None:
    """Deliver again a KeyboardInterrupt that Python reported as unraisable and dropped:
    one raised inside a garbage-collector callback (JAX registers one) is printed as
    "Exception ignored", and the run would go on as if never interrupted. It is raised
    in the main thread a moment later, from a timer thread: raised at once it would
    land in the same callback."""
    if getattr(sys.unraisablehook, "diffgrn", False):
        return
    before = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Timer(0.01, _thread.interrupt_main).start()
        else:
            before(unraisable)

    hook.diffgrn = True
    sys.unraisablehook = hook
