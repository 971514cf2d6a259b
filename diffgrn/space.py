"""Search spaces: which parameters a search may change, and within which box.

```python
space = SearchSpace(
    {"W": Box(-30, 30), "b": Box(-10, 10)},  # leaves by name, each with its box
    frozen=("V", "log_k"),                    # held at the regulator's values
    init=Box(0, 1),                           # the initial state, per gene, searched too
)
bound = space.bind(regulator)                 # flat coordinates of this regulator
theta = bound.uniform(key, 100)               # (100, P) uniform in the box
theta = bound.mutate(key, theta, 0.1)         # + 0.1 × (high − low) · z, clipped
reg, init = bound.build(theta[0])
```

A leaf is named by its attribute path (`"W"`, `"mlp.layers.0.weight"`). Every
inexact-array leaf of the regulator must be boxed or frozen (nothing searched
unbounded by accident). `Box(low, high, log=True)` searches log-uniformly (draws and
mutations act on log values; low > 0). Boxes may hold one bound per element (nested
lists broadcast to the leaf's shape).

The same space bounds training: `train(objective, start, method, space=space)` gives
every method the space's coordinates (`AbstractCoordinates`): gradient steps are
clipped to the box, population candidates searched in its unit cube and clipped into
it, frozen leaves never change. With `init` searched the start is a
`diffgrn.Started(regulator, y0)` (`bound.regulator(theta)`). Without a space a method
changes every leaf, unbounded (`AllLeaves`).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._validate import check_instance
from .config import Configurable
from .regulator import AbstractRegulator, Started


def _bound(x):
    if isinstance(x, (list, tuple)) or getattr(x, "ndim", 0) > 0:
        return tuple(_bound(v) for v in (x.tolist() if hasattr(x, "tolist") else x))
    try:
        return float(x)
    except (TypeError, ValueError):
        return x  # validation names the field


class Box(Configurable):
    """The interval [low, high] of a leaf (numbers, or nested lists with one bound per
    element); `log=True`: searched uniformly in log space (low > 0)."""

    low: float | tuple = eqx.field(static=True, converter=_bound)
    high: float | tuple = eqx.field(static=True, converter=_bound)
    log: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        try:
            low, high = np.asarray(self.low, float), np.asarray(self.high, float)
            np.broadcast_shapes(low.shape, high.shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"Box.low and Box.high must be numbers or arrays of one shape; got "
                f"low={self.low!r}, high={self.high!r}"
            ) from None
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"Box bounds must be finite; got low={self.low}, high={self.high}")
        if not np.all(low < high):
            raise ValueError(
                f"Box.low must be < Box.high (elementwise); got low={self.low}, high={self.high}"
            )
        if self.log and not np.all(low > 0):
            raise ValueError(f"Box(log=True) needs low > 0; got low={self.low}")

    def arrays(self, shape: tuple[int, ...], where: str) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) broadcast to `shape`, or ValueError naming `where`."""
        try:
            low = np.broadcast_to(np.asarray(self.low, np.float32), shape)
            high = np.broadcast_to(np.asarray(self.high, np.float32), shape)
        except ValueError:
            raise ValueError(
                f"{where}: the box's bounds have shape {np.shape(self.low)} / "
                f"{np.shape(self.high)}, which do not broadcast to the leaf's {shape}"
            ) from None
        return low, high


def leaf_name(path) -> str:
    """`"mlp.layers.0.weight"` for a `jax.tree_util` key path."""
    parts = []
    for k in path:
        for attr in ("name", "key", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
    return ".".join(parts)


def leaves(regulator: AbstractRegulator) -> dict[str, Array]:
    """The regulator's inexact-array leaves by name, in tree order."""
    params = eqx.filter(regulator, eqx.is_inexact_array)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {leaf_name(p): v for p, v in flat}


class SearchSpace(Configurable):
    """Per-leaf boxes, frozen leaves and, with `init`, the initial state per gene (see
    the module docstring). `bind(regulator)` makes the flat coordinates a search
    draws, mutates and clips."""

    boxes: dict
    frozen: tuple[str, ...] = eqx.field(static=True, default=(), converter=tuple)
    init: Box | None = None

    def __check_init__(self):
        if not isinstance(self.boxes, dict) or not self.boxes and self.init is None:
            raise ValueError(
                "SearchSpace.boxes must map leaf names to Box objects (and at least one "
                f"leaf or init be searched); got {self.boxes!r}"
            )
        for name, box in self.boxes.items():
            check_instance("SearchSpace", f"boxes[{name!r}]", box, Box)
        if self.init is not None:
            check_instance("SearchSpace", "init", self.init, Box)
        both = set(self.boxes) & set(self.frozen)
        if both:
            raise ValueError(f"SearchSpace: {sorted(both)} are both boxed and frozen")

    def bind(self, regulator: AbstractRegulator) -> "BoundSpace":
        """The flat coordinates of this space on `regulator` (its values for the
        frozen leaves), or ValueError naming a leaf that does not exist or is neither
        boxed nor frozen."""
        check_instance("SearchSpace.bind", "regulator", regulator, AbstractRegulator)
        found = leaves(regulator)
        names = ", ".join(found) or "none"
        for field, given in (("boxes", list(self.boxes)), ("frozen", list(self.frozen))):
            for name in given:
                if name not in found:
                    raise ValueError(
                        f"SearchSpace.{field}: {type(regulator).__name__} has no leaf "
                        f"{name!r}; its leaves: {names}"
                    )
        loose = [n for n in found if n not in self.boxes and n not in self.frozen]
        if loose:
            raise ValueError(
                f"SearchSpace: the leaves {loose} of {type(regulator).__name__} are neither "
                "boxed nor frozen: give each a Box in SearchSpace.boxes or list it in "
                "SearchSpace.frozen"
            )
        lows, highs, logs, searched = [], [], [], []
        for name, value in found.items():
            if name in self.boxes:
                box = self.boxes[name]
                lo, hi = box.arrays(value.shape, f"SearchSpace.boxes[{name!r}]")
                lows.append(lo.ravel())
                highs.append(hi.ravel())
                logs.append(np.full(value.size, box.log))
                searched.append(name)
        genes = regulator.genes if self.init is not None else 0
        if self.init is not None:
            lo, hi = self.init.arrays((genes,), "SearchSpace.init")
            lows.append(lo)
            highs.append(hi)
            logs.append(np.full(genes, self.init.log))
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
        return BoundSpace(
            low=jnp.asarray(cat(lows, np.float32)),
            high=jnp.asarray(cat(highs, np.float32)),
            log=jnp.asarray(cat(logs, bool)),
            template=regulator,
            searched=tuple(searched),
            genes=genes,
        )


class AbstractCoordinates(eqx.Module):
    """What a training method changes of a regulator, and within which bounds.

    Gradient methods step `params(regulator)` (a pytree) with gradients `gather`ed
    from a gradient like the regulator, then `project` the step back into the
    bounds; population methods search flat coordinates `encode(regulator)`, `clip`
    `confine` every candidate and `decode` it. `regulator`/`decode` give the regulator
    (what is not searched is the template's, bitwise)."""

    @abc.abstractmethod
    def params(self, regulator: AbstractRegulator) -> PyTree: ...

    @abc.abstractmethod
    def regulator(self, params: PyTree) -> AbstractRegulator: ...

    @abc.abstractmethod
    def gather(self, tree: PyTree) -> PyTree:
        """The part of `tree` (a gradient shaped like `regulator(params)`) that is
        `params`'."""

    def project(self, params: PyTree) -> PyTree:
        return params

    @abc.abstractmethod
    def encode(self, regulator: AbstractRegulator) -> Float[Array, " P"]: ...

    @abc.abstractmethod
    def decode(self, x: Float[Array, " P"]) -> AbstractRegulator: ...

    def confine(self, x: Float[Array, "*batch P"]) -> Float[Array, "*batch P"]:
        """Population coordinates kept in the bounds."""
        return x


class AllLeaves(AbstractCoordinates):
    """Every inexact-array leaf of the regulator, unbounded (no search space): the
    gradient methods' parameters are the leaves, the population methods' coordinates
    their concatenation."""

    template: AbstractRegulator

    def params(self, regulator):
        return eqx.filter(regulator, eqx.is_inexact_array)

    def regulator(self, params):
        return eqx.combine(params, eqx.filter(self.template, eqx.is_inexact_array, inverse=True))

    def gather(self, tree):
        return eqx.filter(tree, eqx.is_inexact_array)

    def encode(self, regulator):
        return ravel_pytree(self.params(regulator))[0]

    def decode(self, x):
        return self.regulator(ravel_pytree(self.params(self.template))[1](x))


class BoundSpace(AbstractCoordinates):
    """A `SearchSpace` on one regulator: coordinates θ `(P,)` are the searched leaves'
    values (tree order, row-major), then the initial state (per gene) if searched.

    As a method's coordinates: gradient methods step θ and clip it to the box;
    population methods search the unit cube (`to_unit`: each coordinate a fraction
    of its box, log-scaled where the box says so), so one step size fits leaves of
    any range, and every candidate is clipped to it. Frozen leaves are never
    touched. With a searched initial state the regulator is a `Started`."""

    low: Float[Array, " P"]
    high: Float[Array, " P"]
    log: Array
    template: AbstractRegulator
    searched: tuple[str, ...] = eqx.field(static=True)
    genes: int = eqx.field(static=True)  # searched initial-state coordinates (0: none)

    @property
    def size(self) -> int:
        return self.low.shape[0]

    def _lo_hi(self):
        lo = jnp.where(self.log, jnp.log(jnp.where(self.log, self.low, 1.0)), self.low)
        hi = jnp.where(self.log, jnp.log(jnp.where(self.log, self.high, 1.0)), self.high)
        return lo, hi

    def to_unit(self, theta: Float[Array, "*batch P"]) -> Float[Array, "*batch P"]:
        """Coordinates in [0, 1] (log-scaled where the box says so)."""
        lo, hi = self._lo_hi()
        x = jnp.where(self.log, jnp.log(jnp.where(self.log, theta, 1.0)), theta)
        return (x - lo) / (hi - lo)

    def from_unit(self, u: Float[Array, "*batch P"]) -> Float[Array, "*batch P"]:
        """Coordinates of points in [0, 1] (in the box: rounding clipped away)."""
        lo, hi = self._lo_hi()
        x = lo + u * (hi - lo)
        return jnp.clip(jnp.where(self.log, jnp.exp(x), x), self.low, self.high)

    def uniform(self, key: PRNGKeyArray, n: int) -> Float[Array, "n P"]:
        """`n` points uniform in the box (log-uniform on log leaves)."""
        return self.from_unit(jr.uniform(key, (n, self.size)))

    def mutate(
        self, key: PRNGKeyArray, theta: Float[Array, "*batch P"], fraction: float
    ) -> Float[Array, "*batch P"]:
        """θ + `fraction` × (high − low) · z per coordinate, z ~ N(0, 1), clipped to
        the box (on log leaves: in log space)."""
        z = jr.normal(key, theta.shape)
        return self.from_unit(jnp.clip(self.to_unit(theta) + fraction * z, 0.0, 1.0))

    def clip(self, theta: Float[Array, "*batch P"]) -> Float[Array, "*batch P"]:
        return jnp.clip(theta, self.low, self.high)

    def point(
        self, regulator: AbstractRegulator, init: Float[Array, " genes"] | None = None
    ) -> Float[Array, " P"]:
        """θ of `regulator` (shaped like the template) and, if searched, `init`."""
        found = leaves(regulator)
        parts = [jnp.ravel(found[n]) for n in self.searched]
        if self.genes:
            if init is None:
                raise ValueError("BoundSpace.point: this space searches init; give init=")
            parts.append(jnp.ravel(jnp.asarray(init, jnp.float32)))
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def build(
        self, theta: Float[Array, " P"]
    ) -> tuple[AbstractRegulator, Float[Array, " genes"] | None]:
        """The regulator (frozen leaves from the template) and the initial state of θ
        (`None` when the initial state is not searched)."""
        found = leaves(self.template)
        values, i = {}, 0
        for name in self.searched:
            v = found[name]
            values[name] = theta[i : i + v.size].reshape(v.shape).astype(v.dtype)
            i += v.size
        params, static = eqx.partition(self.template, eqx.is_inexact_array)
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        new = [values.get(leaf_name(p), v) for p, v in flat]
        reg = eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)
        init = theta[i : i + self.genes] if self.genes else None
        return reg, init

    def flat_params(self, theta: Float[Array, " P"]) -> Float[Array, " params"]:
        """All of the built regulator's parameters, flat (`Library.params`' layout)."""
        reg, _ = self.build(theta)
        return ravel_pytree(eqx.filter(reg, eqx.is_inexact_array))[0]

    def describe(self) -> list[str]:
        """One name per coordinate (`W[0]`, …, `init[2]`)."""
        found = leaves(self.template)
        out = [f"{n}[{j}]" for n in self.searched for j in range(found[n].size)]
        return out + [f"init[{g}]" for g in range(self.genes)]

    def regulator(self, theta: Float[Array, " P"]) -> AbstractRegulator:
        """The regulator of θ: `build`'s, a `Started` from θ's initial state when the
        space searches it."""
        reg, init = self.build(theta)
        return reg if init is None else Started(reg, init)

    def flatten(self, regulator: AbstractRegulator) -> Float[Array, " P"]:
        """θ of `regulator` (a `Started` when the space searches the initial state)."""
        if self.genes:
            if not isinstance(regulator, Started):
                raise ValueError(
                    "this search space searches the initial state: give the start as "
                    "diffgrn.Started(regulator, init) (or BoundSpace.regulator(theta))"
                )
            return self.point(regulator.regulator, regulator.init)
        if isinstance(regulator, Started):
            regulator = regulator.regulator
        return self.point(regulator)

    # AbstractCoordinates: gradients step θ, populations the unit cube
    def params(self, regulator):
        return self.flatten(regulator)

    def gather(self, tree):
        return self.flatten(tree)

    def project(self, params):
        return self.clip(params)

    def encode(self, regulator):
        return self.to_unit(self.flatten(regulator))

    def decode(self, x):
        return self.regulator(self.from_unit(x))

    def confine(self, x):
        return jnp.clip(x, 0.0, 1.0)
