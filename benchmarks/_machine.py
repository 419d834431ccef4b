"""Machine facts every benchmark records beside its figures, and where the real data is."""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

#: The real datasets (../shared/data beside the repo; MEDLENS_SHARED_DATA overrides, as in
#: the tests).
SHARED_DATA = Path(
    os.environ.get("MEDLENS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

#: How configs/ name the shared data: relative to the repository's root.
CONFIG_SHARED_DATA = Path("../shared/data")


def shared_path(config_path: str) -> Path:
    """A data path as configs/ write it (``../shared/data/...``) under ``SHARED_DATA``, so a
    benchmark reads the file the recipe names, wherever the data lives."""
    try:
        return SHARED_DATA / Path(config_path).relative_to(CONFIG_SHARED_DATA)
    except ValueError:
        raise ValueError(f"{config_path!r} is not under {CONFIG_SHARED_DATA}") from None


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0
