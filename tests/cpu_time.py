"""The CPU time of one call, for the few tests whose issue states a bound ("parses in < 1 s").

Only this thread's time counts (other processes and the suite's server threads do not), and Python's
cyclic garbage collector is paused for the call: in a process that holds a whole test suite's objects one
collection can take longer than the parse itself, and says nothing about the parser."""
from __future__ import annotations

import gc
import time


def parse_seconds(function, *args):
    """(seconds of this thread's CPU time, result) of function(*args)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.thread_time()
        result = function(*args)
        return time.thread_time() - started, result
    finally:
        if enabled:
            gc.enable()
