"""Python's cycle collector, tuned for a process that allocates per request.

The request flow allocates and frees several objects per request (records,
work items, dicts, envelopes). Reference counting frees nearly all of them at
once; but CPython's cycle collector counts allocations, not garbage, and with
its default thresholds it ran a young collection every 700 net allocations and
a full one every few seconds, each full one walking every object the process
holds: Faust's and pydantic's structures, the imported modules. Under load
that was a third of the event loop's time.

:func:`tune` does two things once start-up is done: it moves every object
alive then (modules, schemas, the app) out of the collector's view for good
(``gc.freeze``), and it makes young collections rarer. Cyclic garbage is still
collected, only in larger rounds.
"""

from __future__ import annotations

import gc

#: Older generations are collected after this many collections of the next younger one.
_OLDER = (20, 10)


def tune(young_threshold: int) -> None:
    """Freeze what start-up left, and collect the young generation every ``young_threshold``.

    ``young_threshold`` 0 keeps CPython's thresholds (the freeze still applies).
    """
    gc.collect()
    gc.freeze()
    if young_threshold > 0:
        gc.set_threshold(young_threshold, *_OLDER)
