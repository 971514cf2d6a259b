"""How much memory the default device has left, for checks that refuse a run too large
to fit (tissue construction, the dynamics' noise and states) before building it, and
for sizing batched evaluations (`batch_size`, `map_batched`): a batch of solves that
does not fit runs in chunks that do, rather than failing."""

import os
from collections.abc import Callable

import jax

LIMIT_VARIABLE = "DIFFGRN_MEMORY_LIMIT"
"""An environment variable: bytes diffgrn may plan for at most (e.g. on a shared
device); the available memory is the smaller of this and what the device has."""

FRACTION = 0.5
"""The share of the available memory one batch of evaluations is planned to use: the
estimates count the solve's states and stored noise, not XLA's temporaries."""


def state_bytes(replicates: int, cells: int, genes: int = 1) -> int:
    """Bytes of one state of `replicates` tissues (float32): the unit of every estimate."""
    return 4 * replicates * cells * genes


def available_memory() -> int:
    """Bytes the default device can still hold: the accelerator's limit less what is
    in use, or on the CPU the host's available memory (`MemAvailable`); at most
    `DIFFGRN_MEMORY_LIMIT` where that is set."""
    limit = os.environ.get(LIMIT_VARIABLE)
    have = _device_memory()
    if limit:
        try:
            have = min(have, int(float(limit)))
        except ValueError:
            raise ValueError(f"{LIMIT_VARIABLE} must be a number of bytes; got {limit!r}") from None
    return have


def _device_memory() -> int:
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


def batch_size(
    count: int, each: int, what: str, advice: str = "lower replicates, cells or t_final / dt"
) -> int:
    """How many of `count` evaluations of about `each` bytes to run at once: all of
    them when they fit in `FRACTION` of the available memory, else the most that do
    (a power of two, so a compiled chunk is reused across calls). A ValueError
    naming `what` (and saying what to lower: `advice`), before anything is built,
    when not even one fits."""
    have = available_memory()
    if each > have:
        raise ValueError(
            f"{what}: one evaluation needs about {each / 2**30:.3g} GiB but about "
            f"{have / 2**30:.3g} GiB are available; {advice}"
        )
    fits = int(FRACTION * have // max(each, 1))
    if fits >= count:
        return count
    return max(1, 1 << (max(fits, 1).bit_length() - 1))


def map_batched(f: Callable, xs, batch: int):
    """`jax.vmap(f)(xs)`, or with `batch` below the leading size, `batch` at a time
    (`jax.lax.map(…, batch_size=batch)`: one compiled loop whose peak memory is one
    chunk's)."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    return jax.vmap(f)(xs) if batch >= n else jax.lax.map(f, xs, batch_size=batch)
