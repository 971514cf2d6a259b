"""Discovery: which patterns can a tissue make? Curiosity-driven exploration (IMGEP)
against random search, in a space of pattern descriptors.

`explore(objective, regulator, IMGEP() | RandomExploration(), budget=…, key=…)` simulates
`budget` regulators (each on the objective's R replicates), describes what each one
makes with `descriptors`, and returns a `Library` of (parameters, descriptors,
utility, dominant pattern) with the coverage curve: occupied bins of the descriptor
space (`bins` per dimension) against simulations.
"""

import abc
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from ._memory import map_batched
from ._validate import check_instance, check_range
from .config import Configurable, from_config
from .objective import Objective
from .readout import HardReadout
from .regulator import AbstractRegulator
from .train import progress_bar
from .utility import dominant_pattern, hard_utility

LIBRARY_FORMAT = "diffgrn-library-v1"


class AbstractDescriptor(Configurable):
    """One number describing what R replicates made: a function of the binary fates
    `(R, N, m)`, the final states `(R, N, G)` and the tissue's undirected neighbour
    pairs `(P, 2)`, with a documented range (`bounds`) used for binning."""

    @abc.abstractmethod
    def __call__(
        self,
        fates: Float[Array, "replicates cells m"],
        states: Float[Array, "replicates cells genes"],
        pairs: Array,
    ) -> Scalar: ...

    @abc.abstractmethod
    def bounds(self, objective: Objective) -> tuple[float, float]: ...

    @property
    def name(self) -> str:
        return type(self).__name__


class FateFraction(AbstractDescriptor):
    """Fraction of cells in fate 1 of readout gene `gene`, over cells and replicates:
    [0, 1]."""

    gene: int = eqx.field(static=True, default=0)

    def __call__(self, fates, states, pairs):
        return jnp.mean(fates[..., self.gene])

    def bounds(self, objective):
        return 0.0, 1.0

    @property
    def name(self):
        return "fate-1 fraction" + (f" (gene {self.gene})" if self.gene else "")


class Boundaries(AbstractDescriptor):
    """Fate boundaries per cell: neighbour pairs whose readout gene `gene` differs,
    divided by the number of cells, averaged over replicates (domain structure):
    [0, P / N] for P neighbour pairs (a chain of N cells: (N − 1) / N)."""

    gene: int = eqx.field(static=True, default=0)

    def __call__(self, fates, states, pairs):
        z = fates[..., self.gene]
        unlike = z[:, pairs[:, 0]] != z[:, pairs[:, 1]]
        return jnp.mean(jnp.sum(unlike, axis=1)) / z.shape[1]

    def bounds(self, objective):
        return 0.0, len(_pairs_of(objective, self)) / objective.n_cells

    @property
    def name(self):
        return "boundaries per cell" + (f" (gene {self.gene})" if self.gene else "")


class LikeNeighbours(AbstractDescriptor):
    """Fraction of neighbour pairs with the same fate of readout gene `gene` (1:
    uniform domains, 0: perfect alternation): [0, 1]. Useful on lattices."""

    gene: int = eqx.field(static=True, default=0)

    def __call__(self, fates, states, pairs):
        z = fates[..., self.gene]
        return jnp.mean(z[:, pairs[:, 0]] == z[:, pairs[:, 1]])

    def bounds(self, objective):
        _pairs_of(objective, self)
        return 0.0, 1.0

    @property
    def name(self):
        return "like-fated neighbour pairs" + (f" (gene {self.gene})" if self.gene else "")


class Reproducibility(AbstractDescriptor):
    """S_rep: the entropy of whole-tissue patterns over replicates, per cell (0: every
    replicate makes the same pattern): [0, log₂ R / N]."""

    def __call__(self, fates, states, pairs):
        return hard_utility(fates).s_rep

    def bounds(self, objective):
        return 0.0, math.log2(objective.replicates) / objective.n_cells

    @property
    def name(self):
        return "S_rep (bits per cell)"


class DominantPattern(AbstractDescriptor):
    """Frequency of the most common whole-tissue pattern among the replicates:
    [1 / R, 1], binned over [0, 1]."""

    def __call__(self, fates, states, pairs):
        return dominant_pattern(fates)[1]

    def bounds(self, objective):
        return 0.0, 1.0

    @property
    def name(self):
        return "dominant pattern's frequency"


class Descriptor(AbstractDescriptor):
    """Your own descriptor: `fn(fates, states, pairs) -> scalar` with its range."""

    fn: Callable = eqx.field(static=True)
    low: float = eqx.field(static=True)
    high: float = eqx.field(static=True)
    label: str = eqx.field(static=True, default="custom")

    def __check_init__(self):
        if not callable(self.fn):
            raise ValueError(f"Descriptor.fn must be callable; got {self.fn!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"Descriptor needs finite low < high; got low={self.low}, high={self.high}"
            )

    def __call__(self, fates, states, pairs):
        return self.fn(fates, states, pairs)

    def bounds(self, objective):
        return float(self.low), float(self.high)

    @property
    def name(self):
        return self.label


DESCRIPTORS = dict(
    fraction=FateFraction,
    boundaries=Boundaries,
    like=LikeNeighbours,
    srep=Reproducibility,
    dominant=DominantPattern,
)


def default_descriptors() -> tuple[AbstractDescriptor, ...]:
    """Fate-1 fraction, boundaries per cell and the dominant pattern's frequency."""
    return FateFraction(), Boundaries(), DominantPattern()


def get_descriptors(names: "str | Sequence") -> tuple[AbstractDescriptor, ...]:
    """Descriptors from names (`"fraction,boundaries,dominant"`) or objects."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out = []
    for item in items:
        if isinstance(item, AbstractDescriptor):
            out.append(item)
            continue
        name = str(item).strip()
        if name not in DESCRIPTORS:
            raise ValueError(
                f"unknown descriptor {name!r}; expected some of {', '.join(DESCRIPTORS)} "
                "or diffgrn.discovery.Descriptor objects"
            )
        out.append(DESCRIPTORS[name]())
    if not out:
        raise ValueError("explore.descriptors is empty; give at least one")
    return tuple(out)


def _pairs_of(objective: Objective, descriptor: AbstractDescriptor) -> np.ndarray:
    """The neighbour pairs a pair descriptor reads; a ValueError naming it when the
    tissue has none (the descriptor would be constant, or undefined)."""
    pairs = neighbour_pairs(objective)
    if not len(pairs):
        raise ValueError(
            f"explore.descriptors: {type(descriptor).__name__} reads neighbour pairs, but "
            f"this {objective.n_cells}-cell tissue has none (no edges): choose other "
            "descriptors (e.g. fraction, srep, dominant)"
        )
    return pairs


def check_descriptors(objective: Objective, descriptors, bounds) -> None:
    """Each descriptor returns one number on `(R, N, m)` fates, `(R, N, G)` states and
    the tissue's pairs, within finite bounds low < high: a ValueError naming it, before
    any simulation."""
    r, n, m = objective.replicates, objective.n_cells, len(objective.fate_genes)
    fates = jax.ShapeDtypeStruct((r, n, m), jnp.float32)
    states = jax.ShapeDtypeStruct((r, n, objective.genes), jnp.float32)
    pairs = jax.ShapeDtypeStruct(neighbour_pairs(objective).shape, jnp.int32)
    for d, (low, high) in zip(descriptors, bounds):
        try:
            out = jax.eval_shape(d, fates, states, pairs)
        except Exception as e:  # a user's function may fail in any way
            raise ValueError(
                f"explore.descriptors: {d.name!r} ({type(d).__name__}) fails on fates "
                f"{fates.shape}, states {states.shape} and pairs {pairs.shape}: "
                f"{type(e).__name__}: {e}"
            ) from None
        if getattr(out, "shape", None) != ():
            raise ValueError(
                f"explore.descriptors: {d.name!r} ({type(d).__name__}) must return one "
                f"number (shape ()); on fates {fates.shape} it returns "
                f"{jax.tree_util.tree_map(lambda x: x.shape, out)}"
            )
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"explore.descriptors: {d.name!r} ({type(d).__name__}) has bounds "
                f"({low}, {high}) on this objective; binning needs finite low < high"
            )


def neighbour_pairs(objective: Objective) -> np.ndarray:
    """The tissue's undirected neighbour pairs (i < j), `(P, 2)`."""
    pairs = objective.tissue.neighbour_pairs()
    pairs = np.sort(np.asarray(pairs, np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0).astype(np.int32)


@dataclasses.dataclass
class Library:
    """What `explore` found: one row per simulated regulator.

    `params` `(n, P)` flat parameters (`regulator(i)` rebuilds one), `descriptors`
    `(n, D)`, `utility` `(n,)` (the objective's hard utility on the same draw),
    `patterns` `(n, N·m)` the dominant pattern (0/1), `coverage` the (simulations,
    occupied bins) curve, `names`/`bounds` the descriptors', `bins` per dimension.

    Behaviour libraries (`diffgrn.behaviour.discover`) also hold `points` `(n, P)` (the
    searched coordinates), `inits` `(n, G)` (the initial states, when searched),
    `keys` `(n, 2)` (each simulation's key data) and `goals` `(n, D')` (the goal
    embeddings): enough to re-simulate any row exactly (`behaviour.replay`)."""

    params: np.ndarray
    descriptors: np.ndarray
    utility: np.ndarray
    patterns: np.ndarray
    coverage: list
    names: list
    bounds: list
    bins: int
    template: AbstractRegulator
    config: dict
    points: np.ndarray | None = None
    inits: np.ndarray | None = None
    keys: np.ndarray | None = None
    goals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.utility)

    def regulator(self, i: int) -> AbstractRegulator:
        """The regulator of row `i`."""
        if np.ndim(i) != 0:
            raise ValueError(f"Library.regulator takes one row number; got {i!r}")
        (i,) = self.rows(i, "Library.regulator's row")
        params, static = eqx.partition(self.template, eqx.is_inexact_array)
        _, unravel = ravel_pytree(params)
        return eqx.combine(unravel(jnp.asarray(self.params[i])), static)

    def rows(self, rows: "int | Sequence[int] | np.ndarray", what: str = "rows") -> np.ndarray:
        """`rows` as an index array: one or more row numbers in [0, len(self)) (no
        wrapping from the end); anything else (none, too) is a ValueError naming `what`."""
        idx = np.atleast_1d(np.asarray(rows))
        wrong = idx.dtype.kind not in "iu" or idx.ndim != 1 or idx.size == 0
        if wrong or np.any((idx < 0) | (idx >= len(self))):
            raise ValueError(
                f"{what} must be row numbers in [0, {len(self)}) (the library has "
                f"{len(self)} rows); got {rows!r}"
            )
        return idx.astype(np.int64)

    def cells(self, descriptors: np.ndarray | None = None) -> np.ndarray:
        """The bin index `(n, D)` of each row (or of `descriptors`)."""
        return bin_index(
            self.descriptors if descriptors is None else descriptors, self.bounds, self.bins
        )

    def filled(self) -> int:
        """Occupied bins of the descriptor space."""
        return occupied(self.descriptors, self.bounds, self.bins)

    def dominance(self) -> np.ndarray:
        """Each row's dominant pattern frequency (the `DominantPattern` descriptor), or
        zeros when it was not among the descriptors."""
        name = DominantPattern().name
        if name not in self.names:
            return np.zeros(len(self))
        return np.asarray(self.descriptors[:, list(self.names).index(name)], float)

    def nearest_pattern(self, pattern: "str | Sequence[int]") -> int:
        """The row whose dominant pattern is nearest `pattern` (Hamming distance; ties:
        the most reproducible, then the highest utility)."""
        if isinstance(pattern, str):
            if set(pattern) - {"0", "1"}:
                raise ValueError(f"Library.nearest_pattern: expected 0/1; got {pattern!r}")
            target = np.asarray([int(c) for c in pattern], np.int8)
        else:
            target = np.asarray(pattern, np.int8).ravel()  # (cells, m) row-major as stored
            if not np.isin(target, (0, 1)).all():
                raise ValueError(f"Library.nearest_pattern: expected 0/1; got {pattern!r}")
        if target.shape[0] != self.patterns.shape[1]:
            raise ValueError(
                f"Library.nearest_pattern: the pattern has {target.shape[0]} values but "
                f"the library's patterns have {self.patterns.shape[1]}"
            )
        dist = np.abs(self.patterns.astype(np.int8) - target).sum(axis=1).astype(float)
        dist[~np.all(np.isfinite(np.asarray(self.descriptors, float)), axis=1)] = np.inf
        util = np.nan_to_num(self.utility, nan=-np.inf)
        freq = np.nan_to_num(self.dominance(), nan=-1.0)
        return int(np.lexsort((-util, -freq, dist))[0])

    def save(self, path: "str | os.PathLike") -> Path:
        """Write the folder `path` whole (a temporary folder renamed into place; it
        replaces only an earlier library): `library.eqx` (Equinox leaves: arrays and
        the template regulator) and `meta.json` (shapes, names, coverage, config and
        the leaves' SHA-256). No pickle."""
        from .io import dumps, write_folder

        def write(tmp: Path) -> None:
            leaves = tmp / "library.eqx"
            eqx.tree_serialise_leaves(leaves, (self._arrays(), self.template))
            meta = dict(
                format=LIBRARY_FORMAT,
                rows=len(self),
                shapes={k: list(v.shape) for k, v in self._arrays().items()},
                names=list(self.names),
                bounds=[list(b) for b in self.bounds],
                bins=self.bins,
                coverage=[list(c) for c in self.coverage],
                regulator=self.template.config(),
                config=self.config,
                sha256=hashlib.sha256(leaves.read_bytes()).hexdigest(),
            )
            (tmp / "meta.json").write_text(dumps(meta))

        return write_folder(Path(path), write, LIBRARY_FORMAT, "Library.save")

    def _arrays(self) -> dict:
        out = dict(
            params=jnp.asarray(self.params, jnp.float32),
            descriptors=jnp.asarray(self.descriptors, jnp.float32),
            utility=jnp.asarray(self.utility, jnp.float32),
            patterns=jnp.asarray(self.patterns, jnp.int8),
        )
        for name, dtype in _OPTIONAL.items():  # behaviour libraries' extra columns
            if getattr(self, name) is not None:
                out[name] = jnp.asarray(getattr(self, name), dtype)
        return out


_OPTIONAL = dict(points=jnp.float32, inits=jnp.float32, keys=jnp.uint32, goals=jnp.float32)


def load_library(path: "str | os.PathLike", like: AbstractRegulator | None = None) -> Library:
    """Read a folder written by `Library.save` (the SHA-256 and every field of
    `meta.json` are checked; a ValueError names the file and the field). `like`: a
    regulator of the saved shape, needed for your own regulator classes (diffgrn's
    are rebuilt from the saved config)."""
    path = Path(path)
    meta_file, leaves = path / "meta.json", path / "library.eqx"
    for f in (meta_file, leaves):
        if not f.is_file():
            raise FileNotFoundError(f"load_library: {f} is missing (not a saved library?)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"load_library: {meta_file} is not valid JSON (truncated?): {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != LIBRARY_FORMAT:
        raise ValueError(f"load_library: {meta_file} is not a {LIBRARY_FORMAT} file")
    if hashlib.sha256(leaves.read_bytes()).hexdigest() != meta.get("sha256"):
        raise ValueError(f"load_library: {leaves} does not match {meta_file}")
    _check_meta(meta, meta_file)
    if like is None:
        try:
            template = from_config(meta["regulator"], AbstractRegulator)
        except (KeyError, TypeError, ValueError, ImportError, AttributeError) as e:
            raise ValueError(
                f"load_library: cannot rebuild the regulator {meta['regulator']} of "
                f"{meta_file} ({e}); pass like=<a regulator of the same shape>"
            ) from None
    else:
        if not isinstance(like, AbstractRegulator):
            raise ValueError(f"load_library.like must be a diffgrn regulator; got {like!r}")
        template = like
    size = ravel_pytree(eqx.filter(template, eqx.is_inexact_array))[0].size
    if size != meta["shapes"]["params"][1]:
        raise ValueError(
            f"load_library: the regulator ({type(template).__name__}, {size} parameters) "
            f"is not of the shape {meta_file} saved ({meta['shapes']['params'][1]} "
            "parameters); pass like=<a regulator of the saved shape>"
        )
    dtypes = dict(params=jnp.float32, descriptors=jnp.float32, utility=jnp.float32, **_OPTIONAL)
    like = {k: jnp.zeros(s, dtypes.get(k, jnp.int8)) for k, s in meta["shapes"].items()}
    try:
        arrays, template = eqx.tree_deserialise_leaves(leaves, (like, template))
    except Exception as e:  # equinox raises several types for a file that does not fit
        raise ValueError(
            f"load_library: cannot read {leaves} into the saved shapes with this "
            f"regulator ({type(e).__name__}: {e}); pass like=<a regulator of the saved shape>"
        ) from None
    a = {k: np.asarray(v) for k, v in arrays.items()}
    return Library(
        a["params"],
        a["descriptors"],
        a["utility"],
        a["patterns"],
        [tuple(c) for c in meta["coverage"]],
        meta["names"],
        [tuple(b) for b in meta["bounds"]],
        meta["bins"],
        template,
        meta["config"],
        **{k: a[k] for k in _OPTIONAL if k in a},
    )


def _check_meta(meta: dict, meta_file: Path) -> None:
    """Every field of a library's `meta.json` (those outside the SHA-256 too): a
    ValueError naming the file and the field."""

    def bad(field, expected):
        value = meta.get(field, "(missing)")
        text = repr(value)
        text = text if len(text) < 120 else text[:117] + "..."
        raise ValueError(f"load_library: {meta_file}: '{field}' must be {expected}; got {text}")

    whole = lambda v, least=0: isinstance(v, int) and not isinstance(v, bool) and v >= least
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    rows = meta.get("rows")
    if not whole(rows):
        bad("rows", "an integer >= 0")
    shapes = meta.get("shapes")
    keys = ("params", "descriptors", "utility", "patterns")
    if not (isinstance(shapes, dict) and set(keys) <= set(shapes) <= {*keys, *_OPTIONAL}):
        bad("shapes", f"a mapping of {', '.join(keys)} (and optionally "
            f"{', '.join(_OPTIONAL)}) to shapes")  # fmt: skip
    dims = dict(params=2, descriptors=2, utility=1, patterns=2)
    for k in shapes:
        s = shapes[k]
        ok = isinstance(s, list) and len(s) >= 1 and all(whole(d) for d in s)
        if not (ok and (k not in dims or len(s) == dims[k])):
            bad("shapes", f"{dims.get(k, 'some')} sizes >= 0 for {k!r}")
        if s[0] != rows:
            bad("shapes", f"{rows} rows (the 'rows' field) for {k!r}")
    n_desc = shapes["descriptors"][1]
    names = meta.get("names")
    strings = isinstance(names, list) and all(isinstance(x, str) for x in names)
    if not (strings and len(names) == n_desc):
        bad("names", f"{n_desc} descriptor names")
    bounds = meta.get("bounds")
    if not (
        isinstance(bounds, list)
        and len(bounds) == n_desc
        and all(
            isinstance(b, list) and len(b) == 2 and all(map(number, b)) and b[0] < b[1]
            for b in bounds
        )
    ):
        bad("bounds", f"{n_desc} [low, high] pairs of finite numbers with low < high")
    if not whole(meta.get("bins"), 1):
        bad("bins", "an integer >= 1")
    coverage = meta.get("coverage")
    if not (
        isinstance(coverage, list)
        and all(isinstance(c, list) and len(c) == 2 and all(whole(x) for x in c) for c in coverage)
    ):
        bad("coverage", "a list of [simulations, occupied bins] integer pairs")
    if not isinstance(meta.get("regulator"), dict):
        bad("regulator", "a regulator config (a mapping)")
    if not isinstance(meta.get("config"), dict):
        bad("config", "a mapping (the exploration's settings)")


def bin_index(descriptors: np.ndarray, bounds, bins: int) -> np.ndarray:
    """Bin of each descriptor row: `bins` equal bins per dimension over `bounds`."""
    d = np.asarray(descriptors, float)
    lo = np.asarray([b[0] for b in bounds])
    hi = np.asarray([b[1] for b in bounds])
    x = (d - lo) / (hi - lo)
    return np.clip(np.floor(x * bins), 0, bins - 1).astype(np.int64)


def occupied(descriptors: np.ndarray, bounds, bins: int) -> int:
    """Number of distinct bins the finite rows of `descriptors` occupy."""
    d = np.asarray(descriptors, float)
    d = d[np.all(np.isfinite(d), axis=1)]
    if len(d) == 0:
        return 0
    return len(np.unique(bin_index(d, bounds, bins), axis=0))


class Reached(NamedTuple):
    """What an exploration strategy proposes a round from: the library so far (the
    first `count` rows of `params` and `descriptors` are filled), the descriptors'
    bounds `low`, `high`, the starting parameters `theta0` and the run's settings."""

    theta0: Float[Array, " params"]
    params: Float[Array, "budget params"]
    descriptors: Float[Array, "budget descriptors"]
    count: Int[Array, ""]
    low: Float[Array, " descriptors"]
    high: Float[Array, " descriptors"]
    scale: float
    batch: int
    bins: int


class AbstractExploration(Configurable):
    """How `explore` chooses the regulators of each round: a number of random draws
    around θ₀ first, then `propose` from what the library has reached."""

    @abc.abstractmethod
    def random_draws(self, budget: int, batch: int) -> int:
        """How many of the `budget` regulators are drawn at random around θ₀ before
        the first `propose` (all of them: random search)."""

    @abc.abstractmethod
    def propose(
        self, key: PRNGKeyArray, reached: Reached
    ) -> tuple[Float[Array, "batch params"], PRNGKeyArray]:
        """A round's `batch` parameter vectors and the key of their simulations."""


class RandomExploration(AbstractExploration):
    """Every regulator is θ₀ + `scale`·z, z ~ N(0, I), around the given regulator's
    parameters θ₀ (as `RandomSearch`). Every strategy's random draws are these."""

    def random_draws(self, budget: int, batch: int) -> int:
        return budget

    def propose(
        self, key: PRNGKeyArray, reached: Reached
    ) -> tuple[Float[Array, "batch params"], PRNGKeyArray]:
        k_theta, k_sim = jr.split(key)
        shape = (reached.batch, reached.theta0.shape[0])
        return reached.theta0 + reached.scale * jr.normal(k_theta, shape), k_sim


class IMGEP(AbstractExploration):
    """Curiosity-driven exploration (intrinsically motivated goal exploration): the
    first `initial` regulators (default budget // 10, at least one batch) as random;
    then each round samples `batch` goals uniformly in the box of the descriptors
    reached so far, widened by `expand` × its width on each side (within the
    descriptors' bounds), takes the regulator whose descriptors are nearest each goal
    (in descriptor space scaled by the bounds) and perturbs it, θ + `mutation`·`scale`·z.
    Goals outside what has been reached pull the search outward. The default."""

    initial: int | None = eqx.field(static=True, default=None)
    mutation: float = eqx.field(static=True, default=0.2)
    """Mutation of a goal's nearest point, relative to the draws' scale."""
    expand: float = eqx.field(static=True, default=0.2)

    def __check_init__(self):
        if self.initial is not None:
            check_range("IMGEP", "initial", self.initial, ge=1, integer=True)
        check_range("IMGEP", "mutation", self.mutation, gt=0.0)
        check_range("IMGEP", "expand", self.expand, ge=0.0)

    def random_draws(self, budget: int, batch: int) -> int:
        if self.initial is None:  # at least one round of random draws to take goals from
            return min(budget, max(batch, budget // 10))
        check_range("IMGEP", "initial", self.initial, ge=1, le=budget, integer=True)
        return min(budget, max(batch, self.initial))

    def propose(
        self, key: PRNGKeyArray, reached: Reached
    ) -> tuple[Float[Array, "batch params"], PRNGKeyArray]:
        k_goal, k_mut, k_sim = jr.split(key, 3)
        lo, hi, lib_desc = reached.low, reached.high, reached.descriptors
        valid = (jnp.arange(lib_desc.shape[0]) < reached.count) & jnp.all(jnp.isfinite(lib_desc), 1)
        unit = (lib_desc - lo) / (hi - lo)
        big = jnp.where(valid[:, None], unit, jnp.nan)
        reached_lo, reached_hi = jnp.nanmin(big, 0), jnp.nanmax(big, 0)
        width = jnp.maximum(reached_hi - reached_lo, 1.0 / reached.bins)  # never collapsed
        g_lo = jnp.clip(reached_lo - self.expand * width, 0.0, 1.0)
        g_hi = jnp.clip(reached_hi + self.expand * width, 0.0, 1.0)
        goals = g_lo + (g_hi - g_lo) * jr.uniform(k_goal, (reached.batch, lo.shape[0]))
        dist = jnp.sum((jnp.where(valid[:, None], unit, 1e6)[None] - goals[:, None]) ** 2, -1)
        source = jnp.argmin(dist, axis=1)
        noise = jr.normal(k_mut, (reached.batch, reached.theta0.shape[0]))
        return reached.params[source] + self.mutation * reached.scale * noise, k_sim


def explore(
    objective: Objective,
    regulator: AbstractRegulator,
    strategy: AbstractExploration | None = None,
    *,
    budget: int = 2000,
    key: PRNGKeyArray,
    descriptors: "str | Sequence | None" = None,
    batch: int = 50,
    scale: float = 1.0,
    bins: int = 20,
    progress: bool = True,
) -> Library:
    """Explore the patterns `objective`'s tissue makes with regulators shaped like
    `regulator`, with `budget` simulations (each one regulator on R replicates).

    - `strategy=IMGEP(initial, mutation, expand)` (default `IMGEP()`): random draws
      first, then goals sampled in (and just beyond) the descriptor box reached so
      far, each met by mutating the nearest regulator (see `IMGEP`).
    - `strategy=RandomExploration()`: every regulator is θ₀ + `scale`·z,
      z ~ N(0, I), around the given regulator's parameters θ₀ (as `RandomSearch`).

    All of a round's regulators are simulated in one compiled call (vmap over the
    batch; the library is preallocated, so no recompilation across rounds).
    """
    strategy = IMGEP() if strategy is None else strategy
    check_instance("explore", "strategy", strategy, AbstractExploration)
    check_range("explore", "budget", budget, ge=1, integer=True)
    check_range("explore", "batch", batch, ge=1, integer=True)
    check_range("explore", "scale", scale, gt=0.0)
    check_range("explore", "bins", bins, ge=1, integer=True)
    if not isinstance(objective, Objective):
        raise ValueError(
            f"explore.objective must be a diffgrn.Objective; got {type(objective).__name__}"
        )
    objective.check_regulator(regulator)
    descs = default_descriptors() if descriptors is None else get_descriptors(descriptors)
    for d in descs:
        gene = getattr(d, "gene", 0)
        if not 0 <= gene < len(objective.fate_genes):
            raise ValueError(
                f"explore.descriptors: {type(d).__name__}.gene = {gene} but the objective "
                f"reads out {len(objective.fate_genes)} gene(s): expected 0 to "
                f"{len(objective.fate_genes) - 1} (an index into Objective.fate_genes)"
            )
    batch = min(batch, budget)
    # Random rounds are whole rounds: the count drawn (and recorded) is rounded up to them.
    n_init = min(budget, -(-strategy.random_draws(budget, batch) // batch) * batch)

    params, static = eqx.partition(regulator, eqx.is_inexact_array)
    theta0, unravel = ravel_pytree(params)
    n_params = theta0.size
    bounds = [tuple(float(b) for b in d.bounds(objective)) for d in descs]
    check_descriptors(objective, descs, bounds)
    lo = jnp.asarray([b[0] for b in bounds], jnp.float32)
    hi = jnp.asarray([b[1] for b in bounds], jnp.float32)
    pairs = jnp.asarray(neighbour_pairs(objective))
    n_pattern = objective.n_cells * len(objective.fate_genes)

    def describe(theta, k):
        reg = eqx.combine(unravel(theta), static)
        s = objective.simulate(reg, k)
        fates = objective.fates(s, HardReadout())
        d = jnp.stack([jnp.asarray(f(fates, s, pairs), jnp.float32) for f in descs])
        u = objective.hard_of(s).value
        ok = jnp.all(jnp.isfinite(s)) & objective.resolves(reg)  # unresolved: not counted
        pattern = dominant_pattern(fates)[0].reshape(-1)
        return jnp.where(ok, d, jnp.nan), jnp.where(ok, u, jnp.nan), pattern.astype(jnp.int8)

    def rounds(propose):
        @jax.jit
        def one_round(k, lib_theta, lib_desc, count):
            reached = Reached(theta0, lib_theta, lib_desc, count, lo, hi, scale, batch, bins)
            thetas, k_sim = propose(k, reached)
            return (
                thetas,
                *map_batched(lambda a: describe(*a), (thetas, jr.split(k_sim, batch)), chunk),
            )

        return one_round

    chunk = objective.batch_size(batch, "explore (one round)")  # a round in chunks that fit
    first_rounds, goal_rounds = rounds(RandomExploration().propose), rounds(strategy.propose)

    lib_theta = np.zeros((budget, n_params), np.float32)
    lib_desc = np.full((budget, len(descs)), np.nan, np.float32)
    lib_util = np.full((budget,), np.nan, np.float32)
    lib_pat = np.zeros((budget, n_pattern), np.int8)
    coverage = []
    bar = progress_bar(budget, f"explore ({type(strategy).__name__})", progress)
    count, r = 0, 0
    while count < budget:
        k = jr.fold_in(key, r)
        run = first_rounds if count < n_init else goal_rounds  # from the library as it stands
        out = run(k, jnp.asarray(lib_theta), jnp.asarray(lib_desc), count)
        thetas, desc, util, pat = (np.asarray(x) for x in out)
        take = min(batch, budget - count)
        sl = slice(count, count + take)
        lib_theta[sl], lib_desc[sl], lib_util[sl], lib_pat[sl] = (
            thetas[:take],
            desc[:take],
            util[:take],
            pat[:take],
        )
        count += take
        r += 1
        coverage.append((count, occupied(lib_desc[:count], bounds, bins)))
        if bar is not None:
            bar.set_postfix(bins=coverage[-1][1])
            bar.update(take)
    if bar is not None:
        bar.close()
    config = dict(
        method=strategy.config(),
        budget=budget,
        batch=batch,
        initial=n_init,
        scale=scale,
        bins=bins,
        descriptors=[d.name for d in descs],
        objective=objective.config(),
    )
    return Library(
        lib_theta,
        lib_desc,
        lib_util,
        lib_pat,
        coverage,
        [d.name for d in descs],
        bounds,
        bins,
        regulator,
        config,
    )
