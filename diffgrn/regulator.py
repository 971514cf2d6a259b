"""Regulators: the gene-regulatory function f mapping (s, s̄) to ds/dt, cell by cell.

A regulator sees a cell's own state `s` and its neighbour mean `s̄`, each of length
`genes` on the last axis, and returns ds/dt of the same shape. Any leading axes
(replicates, cells) are batch axes. Write your own as a small subclass:

```python
class Repressor(diffgrn.AbstractRegulator):
    strength: jax.Array                      # trainable

    def __call__(self, s, sbar):             # (..., 1), (..., 1) -> (..., 1)
        return self.strength * (1 - sbar) - s
```

`diffgrn.save` records its class and constructor arguments (`diffgrn.config`), so
`diffgrn.load` rebuilds it in a fresh process.
"""

import abc
from collections.abc import Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._validate import check_choice, check_range
from .config import Configurable

INPUTS = {"neighbours": 1, "both": 2}  # network inputs per gene: s̄, or (s, s̄)


class AbstractRegulator(Configurable):
    """f: (s, s̄) ↦ ds/dt on arrays `(*batch, genes)`.

    `genes` (default 1) is the number of genes per cell the regulator is built for;
    an `Objective` refuses a regulator whose `genes` differs from its own.
    """

    genes: int = eqx.field(static=True, default=1, kw_only=True)

    @abc.abstractmethod
    def __call__(
        self, s: Float[Array, "*batch genes"], sbar: Float[Array, "*batch genes"]
    ) -> Float[Array, "*batch genes"]: ...

    def initial_state(self) -> Float[Array, "*cells genes"] | None:
        """The state every replicate starts from, when the regulator carries one
        (`Started`); `None` (the default): the dynamics draw it."""
        return None


class Started(AbstractRegulator):
    """A regulator with the initial state it starts from (per gene, or per cell and
    gene): what a search space that searches the initial state trains
    (`SearchSpace(init=Box(…))`). Its drift is `regulator`'s; an `Objective`
    simulates it from `init` instead of a draw."""

    regulator: AbstractRegulator
    init: Float[Array, "*cells genes"]

    def __init__(self, regulator: AbstractRegulator, init):
        if not isinstance(regulator, AbstractRegulator) or isinstance(regulator, Started):
            raise ValueError(
                f"Started.regulator must be a diffgrn regulator; got {type(regulator).__name__}"
            )
        init = jnp.asarray(init, jnp.float32)
        if init.ndim not in (1, 2) or init.shape[-1] != regulator.genes:
            raise ValueError(
                f"Started.init must hold one value per gene ({regulator.genes}), or per cell "
                f"and gene; got shape {init.shape}"
            )
        self.regulator = regulator
        self.init = init
        self.genes = regulator.genes

    def __call__(self, s, sbar):
        return self.regulator(s, sbar)

    def initial_state(self):
        return self.init

    def arguments(self) -> dict:
        return dict(regulator=self.regulator, init=self.init)


class MLPRegulator(AbstractRegulator):
    """An `eqx.nn.MLP` inputs → widths… → genes with tanh hidden layers and a linear
    output.

    `inputs="neighbours"` (default) feeds s̄ only (G inputs); `"both"` feeds (s, s̄)
    (2G inputs). The default, 1 gene and neighbours only, is model.md's 1 → 8 → 8 → 1
    network with 97 parameters. The layers are applied as batched matrix products over
    the trailing axis (faster on CPU than `jax.vmap` of the MLP, identical results).

    `output_scale` multiplies the output layer's initial weights and bias (default
    0.01; 1 is Equinox's initialisation). Training then starts from f ≈ 0, where no
    cell is driven to a wall and fates are still undecided at T: gradients exist
    there, and the ES starts from there too (docs/comparison.md measures both).
    """

    mlp: eqx.nn.MLP
    widths: tuple[int, ...] = eqx.field(static=True)
    inputs: str = eqx.field(static=True)
    """The neighbours' mean only (`neighbours`), or the cell's own state too (`both`)."""

    def __init__(
        self,
        widths: Sequence[int] = (8, 8),
        *,
        key: PRNGKeyArray,
        output_scale: float = 0.01,
        genes: int = 1,
        inputs: Literal["neighbours", "both"] = "neighbours",
    ):
        check_range("MLPRegulator", "output_scale", output_scale, ge=0.0)
        check_range("MLPRegulator", "genes", genes, ge=1, integer=True)
        check_choice("MLPRegulator", "inputs", inputs, INPUTS)
        widths = tuple(widths)
        if len(widths) < 1:
            raise ValueError("MLPRegulator.widths must hold at least one width; got ()")
        for w in widths:
            check_range("MLPRegulator", "widths", w, ge=1, integer=True)
        widths = tuple(int(w) for w in widths)
        genes = int(genes)
        n_in = genes * INPUTS[inputs]
        if len(set(widths)) == 1:
            self.mlp = eqx.nn.MLP(n_in, genes, widths[0], len(widths), activation=jnp.tanh, key=key)
        else:  # eqx.nn.MLP has one width; build it and swap in the layers we want.
            sizes = (n_in, *widths, genes)
            keys = jr.split(key, len(sizes) - 1)
            layers = tuple(
                eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
            )
            mlp = eqx.nn.MLP(n_in, genes, widths[0], len(widths), activation=jnp.tanh, key=key)
            self.mlp = eqx.tree_at(lambda m: m.layers, mlp, layers)
        if output_scale != 1.0:
            last = self.mlp.layers[-1]
            self.mlp = eqx.tree_at(
                lambda m: (m.layers[-1].weight, m.layers[-1].bias),
                self.mlp,
                (last.weight * output_scale, last.bias * output_scale),
            )
        self.widths = widths
        self.genes = genes
        self.inputs = inputs

    @property
    def neighbours_only(self) -> bool:
        """Whether the network sees s̄ only (`inputs="neighbours"`), read from its
        input width (G, not 2G) so that nothing compares the string at run time."""
        return self.mlp.in_size == self.genes

    def __call__(
        self, s: Float[Array, "*batch genes"], sbar: Float[Array, "*batch genes"]
    ) -> Float[Array, "*batch genes"]:
        h = sbar if self.neighbours_only else jnp.concatenate([s, sbar], -1)
        for layer in self.mlp.layers[:-1]:
            h = self.mlp.activation(h @ layer.weight.T + layer.bias)
        last = self.mlp.layers[-1]
        return self.mlp.final_activation(h @ last.weight.T + last.bias)


class TanhRegulator(AbstractRegulator):
    """Reference lateral inhibition f(s̄) = a·tanh(−b(s̄ − c)), with a, b, c trainable
    (one gene; the cell's own state is not used)."""

    a: Float[Array, ""]
    b: Float[Array, ""]
    c: Float[Array, ""]

    def __init__(self, a: float = 1.0, b: float = 10.0, c: float = 0.5):
        for name, v in (("a", a), ("b", b), ("c", c)):
            check_range("TanhRegulator", name, v)
        self.a, self.b, self.c = (jnp.asarray(v, jnp.float32) for v in (a, b, c))
        self.genes = 1

    def arguments(self) -> dict:
        """a, b and c as numbers: its three parameters are its constructor arguments, so
        its config rebuilds it (a `Run` starts from them)."""
        short = lambda v: float(str(np.float32(v)))  # 0.3, not 0.30000001192092896
        return dict(a=short(self.a), b=short(self.b), c=short(self.c))

    def __call__(
        self, s: Float[Array, "*batch genes"], sbar: Float[Array, "*batch genes"]
    ) -> Float[Array, "*batch genes"]:
        return self.a * jnp.tanh(-self.b * (sbar - self.c))


class TranscriptionalRegulator(AbstractRegulator):
    """The transcriptional gene circuit ds/dt = sigmoid(W s + V s̄ + b) − k ⊙ s.

    `W` (genes × genes) couples a cell's own genes, `V` (genes × genes) its
    neighbours' mean, `b` is a bias and `k > 0` a degradation rate per gene (stored as
    log k, so it stays positive under any update). Initialisation: W and V normal
    with standard deviation `scale / sqrt(genes)`, b = 0, k = 1. With k ≥ 1 the
    drift keeps s in [0, 1] by itself.
    """

    W: Float[Array, "genes genes"]
    V: Float[Array, "genes genes"]
    b: Float[Array, " genes"]
    log_k: Float[Array, " genes"]

    def __init__(self, genes: int = 2, *, key: PRNGKeyArray, scale: float = 1.0):
        check_range("TranscriptionalRegulator", "genes", genes, ge=1, integer=True)
        check_range("TranscriptionalRegulator", "scale", scale, ge=0.0)
        g = int(genes)
        kw, kv = jr.split(key)
        std = scale / g**0.5
        self.W = std * jr.normal(kw, (g, g))
        self.V = std * jr.normal(kv, (g, g))
        self.b = jnp.zeros(g)
        self.log_k = jnp.zeros(g)
        self.genes = g

    @property
    def k(self) -> Float[Array, " genes"]:
        return jnp.exp(self.log_k)

    def __call__(
        self, s: Float[Array, "*batch genes"], sbar: Float[Array, "*batch genes"]
    ) -> Float[Array, "*batch genes"]:
        return jax.nn.sigmoid(s @ self.W.T + sbar @ self.V.T + self.b) - self.k * s


def count_parameters(regulator: AbstractRegulator) -> int:
    leaves = jax.tree_util.tree_leaves(eqx.filter(regulator, eqx.is_inexact_array))
    return sum(x.size for x in leaves)


def drift_stiffness(
    regulator: AbstractRegulator, dt: float, points: int = 401, samples: int = 4096
) -> Float[Array, ""]:
    """The computation behind `diagnostics.stiffness` (here, so that `Objective` can
    use it for `Dynamics(max_stiffness=…)` without importing the diagnostics)."""
    g = regulator.genes
    x = jnp.linspace(0.0, 1.0, points)[:, None] * jnp.ones(g)
    s_rand, sbar_rand = jr.uniform(jr.key(0), (2, samples, g))
    on_diagonal = max_jacobian_row_sum(regulator, x, x)
    off_diagonal = max_jacobian_row_sum(regulator, s_rand, sbar_rand)
    return dt * jnp.maximum(on_diagonal, off_diagonal)


def max_jacobian_row_sum(
    regulator: AbstractRegulator,
    s: Float[Array, "points genes"],
    sbar: Float[Array, "points genes"],
) -> Float[Array, ""]:
    """max over the points of ‖[∂f/∂s, ∂f/∂s̄]‖_∞ (the largest absolute row sum)."""

    def row_sums(si, sbari):
        js, jb = jax.jacfwd(regulator, argnums=(0, 1))(si, sbari)
        return jnp.max(jnp.sum(jnp.abs(js) + jnp.abs(jb), axis=1))

    return jnp.max(jax.vmap(row_sums)(s, sbar))
