"""What one case cost: wall seconds and the process's peak memory while it ran.

The peak is the process's resident set high-water mark (``VmHWM``), reset before the case on
Linux (writing 5 to ``/proc/self/clear_refs``), so it is the peak *during* the case; where
that is not allowed it is the peak since the process started (``ru_maxrss``), and
``peak_rss_method`` says which. Both are recorded beside every prediction, so a user can see
which inputs are expensive before scaling up.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field


def _status_mib(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field_name):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _process_peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


@dataclass
class CaseCost:
    """A meter for one case: ``with CaseCost() as cost: ...``, then ``cost.seconds`` and
    ``cost.peak_rss_mib`` (MiB)."""

    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    peak_rss_method: str = ""
    _start: float = field(default=0.0, repr=False)
    _reset: bool = field(default=False, repr=False)

    def __enter__(self) -> CaseCost:
        self._reset = _reset_peak()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        hwm = _status_mib("VmHWM") if self._reset else None
        if hwm is not None:
            self.peak_rss_mib, self.peak_rss_method = hwm, "during the case"
        else:
            self.peak_rss_mib, self.peak_rss_method = _process_peak_mib(), "since start"

    def columns(self) -> dict[str, float]:
        """The two columns added to a prediction row (seconds, MiB; rounded)."""
        return {"seconds": round(self.seconds, 4), "peak_rss_mib": round(self.peak_rss_mib, 1)}
