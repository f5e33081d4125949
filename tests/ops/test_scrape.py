"""Multiprocess bookkeeping: live gauges of dead processes are dropped, counters stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server.ops.scrape import forget_dead_processes


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_live_gauges_of_dead_processes_are_forgotten_and_counters_kept(tmp_path: Path) -> None:
    gone, alive = dead_pid(), os.getpid()
    for name in (f"gauge_livesum_{gone}.db", f"counter_{gone}.db", f"gauge_livesum_{alive}.db"):
        (tmp_path / name).write_bytes(b"")

    forget_dead_processes(str(tmp_path))

    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{gone}.db", f"gauge_livesum_{alive}.db"]
