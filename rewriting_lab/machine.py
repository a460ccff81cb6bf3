"""Where figures were measured, for the tables that quote them."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> dict[str, str]:
    """The machine, processor, Python, torch and thread count of this process."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "processor": platform.processor() or "unknown",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
    }
