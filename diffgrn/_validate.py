"""Construction-time checks that name the field and its allowed range."""

import math
from collections.abc import Iterable


def check_range(
    owner: str,
    field: str,
    value: object,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    integer: bool = False,
) -> None:
    """Raise ValueError unless `value` is a finite number (not a string) in the given
    range."""
    ok = not isinstance(value, (str, bytes))  # "0.1" is not a number: fail here, not in a solve
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        ok, v = False, math.nan
    if ok and not math.isfinite(v):
        ok = False
    if integer and ok and (isinstance(value, bool) or int(v) != v):
        ok = False
    if ok and gt is not None and not v > gt:
        ok = False
    if ok and ge is not None and not v >= ge:
        ok = False
    if ok and le is not None and not v <= le:
        ok = False
    if ok and lt is not None and not v < lt:
        ok = False
    if not ok:
        parts = []
        if gt is not None:
            parts.append(f"> {gt}")
        if ge is not None:
            parts.append(f">= {ge}")
        if lt is not None:
            parts.append(f"< {lt}")
        if le is not None:
            parts.append(f"<= {le}")
        kind = "an integer" if integer else "a finite number"
        allowed = f"{kind} " + " and ".join(parts) if parts else kind
        raise ValueError(f"{owner}.{field} must be {allowed}; got {value!r}")


def check_choice(owner: str, field: str, value: object, choices: Iterable[str]) -> None:
    """Raise ValueError unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"{owner}.{field} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )


def subclass_names(base: type) -> list[str]:
    """`Name()` for each concrete subclass of `base` defined so far (the allowed
    choices an error message lists)."""
    out, todo = [], list(base.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if not getattr(cls, "__abstractmethods__", None):
            out.append(cls.__name__ + "()")
    return out


def check_instance(owner: str, field: str, value: object, base: type) -> None:
    """Raise ValueError unless `value` is an instance of `base`, naming the field and
    the concrete subclasses of `base`."""
    if not isinstance(value, base):
        raise ValueError(
            f"{owner}.{field} must be a diffgrn {base.__name__} "
            f"({', '.join(subclass_names(base))}); got {value!r}"
        )


def check_key(owner: str, field: str, key: object) -> None:
    """Raise ValueError unless `key` is one JAX PRNG key: a typed key (`jax.random.key`)
    or a raw `uint32[2]` one (`jax.random.PRNGKey`). Caught here, before any compile,
    not deep inside a traced solve."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    ok = False
    if isinstance(key, (jax.Array, np.ndarray)):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            ok = key.shape == ()
        else:
            ok = key.dtype == np.uint32 and key.shape in ((2,), (4,))
    if not ok:
        got = (
            f"an array {key.dtype}{list(key.shape)}"
            if isinstance(key, (jax.Array, np.ndarray))
            else repr(key)[:80]
        )
        raise ValueError(
            f"{owner}.{field} must be a JAX PRNG key (one key: jax.random.key(seed)); got {got}"
        )
