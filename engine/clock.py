"""When this process started (helpers: no project imports), so `wall_time_s` counts the imports
and the decoding too, not just the loop; and durations in words, for the pages and the command line.

Source: proc(5): /proc/self/stat field 22 is the start time in clock ticks after boot, and
/proc/uptime the seconds since boot on the same clock (/proc/stat's `btime` is not used: in a
virtual machine it was 7 s off here).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

IMPORTED_AT = time.time()  # the fallback where there is no /proc (macOS, Windows): a little late


def process_started_at() -> float:
    """Seconds since the epoch (time.time()'s clock) at which this process started, to about 10 ms;
    where /proc cannot be read, the time this module was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
        ticks = int(fields[19])  # field 22 overall; fields[0] here is field 3
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        started = time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return IMPORTED_AT
    return started if started <= IMPORTED_AT + 1 else IMPORTED_AT  # a clock set back after boot: trust neither


def fmt_duration(seconds: float | None) -> str:
    """A duration with its units ("42 s", "3 min 5 s", "1 h 2 min", "1 min"; "0:02" read as two minutes to
    a new user); "–" for none."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h"] * bool(h) + [f"{m} min"] * bool(m) + [f"{s} s"] * bool(s and not h)  # no zero parts
    return " ".join(parts) or "0 s"
