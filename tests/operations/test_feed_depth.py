"""The dashboard feed's partial depth reads: the counts it did not read are the last it read."""

from __future__ import annotations

from server.ops.opsfeed import OpsFeed
from taskstore.depth import QueueDepth


def test_a_partial_depth_read_keeps_the_known_delayed_and_dead_counts() -> None:
    known = QueueDepth(length=5, pending=1, delayed=3, dead=2)

    partial = OpsFeed._with_known(known, QueueDepth(length=7, pending=2, delayed=-1, dead=-1))
    full = OpsFeed._with_known(known, QueueDepth(length=7, pending=2, delayed=0, dead=0))

    assert partial == QueueDepth(length=7, pending=2, delayed=3, dead=2)
    assert full == QueueDepth(length=7, pending=2, delayed=0, dead=0)
