"""How much memory the default device has left, for checks that refuse a run too large
to fit (tissue construction, the dynamics' noise and states) before building it."""

import os

import jax


def available_memory() -> int:
    """Bytes the default device can still hold: the accelerator's limit less what is
    in use, or on the CPU the host's available memory (`MemAvailable`)."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
