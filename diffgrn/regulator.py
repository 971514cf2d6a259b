"""Regulators: the gene-regulatory function f mapping s̄ to ds/dt, cell by cell."""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._validate import check_range


class AbstractRegulator(eqx.Module):
    """f: s̄ ↦ ds/dt, applied elementwise to an array of any shape."""

    @abc.abstractmethod
    def __call__(self, sbar: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        ...

    @abc.abstractmethod
    def config(self) -> dict:
        """JSON-able constructor arguments (used by `diffgrn.save`/`load`)."""


class MLPRegulator(AbstractRegulator):
    """An `eqx.nn.MLP` 1 → widths… → 1 with tanh hidden layers and a linear output.

    The default `widths=(8, 8)` has 97 parameters. The layers are applied as batched
    matrix products over the trailing axis (faster on CPU than `jax.vmap` of the MLP
    over scalars, with identical results).

    `output_scale` multiplies the output layer's initial weights and bias (default
    0.01; 1 is Equinox's initialisation). Training then starts from f ≈ 0, where no
    cell is driven to a wall and fates are still undecided at T: gradients exist
    there, and the ES starts from there too (docs/comparison.md measures both).
    """

    mlp: eqx.nn.MLP
    widths: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, widths: Sequence[int] = (8, 8), *, key: PRNGKeyArray,
                 output_scale: float = 0.01):
        check_range("MLPRegulator", "output_scale", output_scale, ge=0.0)
        widths = tuple(widths)
        if len(widths) < 1:
            raise ValueError("MLPRegulator.widths must hold at least one width; got ()")
        for w in widths:
            check_range("MLPRegulator", "widths", w, ge=1, integer=True)
        widths = tuple(int(w) for w in widths)
        if len(set(widths)) == 1:
            self.mlp = eqx.nn.MLP(1, 1, widths[0], len(widths), activation=jnp.tanh,
                                  key=key)
        else:  # eqx.nn.MLP has one width; build it and swap in the layers we want.
            sizes = (1, *widths, 1)
            keys = jr.split(key, len(sizes) - 1)
            layers = tuple(eqx.nn.Linear(a, b, key=k)
                           for a, b, k in zip(sizes[:-1], sizes[1:], keys))
            mlp = eqx.nn.MLP(1, 1, widths[0], len(widths), activation=jnp.tanh,
                             key=key)
            self.mlp = eqx.tree_at(lambda m: m.layers, mlp, layers)
        if output_scale != 1.0:
            last = self.mlp.layers[-1]
            self.mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias),
                                   self.mlp, (last.weight * output_scale,
                                              last.bias * output_scale))
        self.widths = widths

    def __call__(self, sbar: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        h = sbar[..., None]
        for layer in self.mlp.layers[:-1]:
            h = self.mlp.activation(h @ layer.weight.T + layer.bias)
        last = self.mlp.layers[-1]
        return self.mlp.final_activation(h @ last.weight.T + last.bias)[..., 0]

    def config(self) -> dict:
        return dict(type="MLPRegulator", widths=list(self.widths))


class TanhRegulator(AbstractRegulator):
    """Reference lateral inhibition f(s̄) = a·tanh(−b(s̄ − c)), with a, b, c trainable."""

    a: Float[Array, ""]
    b: Float[Array, ""]
    c: Float[Array, ""]

    def __init__(self, a: float = 1.0, b: float = 10.0, c: float = 0.5):
        for name, v in (("a", a), ("b", b), ("c", c)):
            check_range("TanhRegulator", name, v)
        self.a, self.b, self.c = (jnp.asarray(v, jnp.float32) for v in (a, b, c))

    def __call__(self, sbar: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        return self.a * jnp.tanh(-self.b * (sbar - self.c))

    def config(self) -> dict:
        return dict(type="TanhRegulator")


def regulator_from_config(config: dict) -> AbstractRegulator:
    """Rebuild a regulator skeleton (parameters arbitrary) from `config()`."""
    kind = config.get("type")
    if kind == "MLPRegulator":
        return MLPRegulator(config["widths"], key=jr.key(0))
    if kind == "TanhRegulator":
        return TanhRegulator()
    raise ValueError(f"unknown regulator type {kind!r}; expected 'MLPRegulator' or "
                     "'TanhRegulator'")


def count_parameters(regulator: AbstractRegulator) -> int:
    leaves = jax.tree_util.tree_leaves(eqx.filter(regulator, eqx.is_inexact_array))
    return sum(x.size for x in leaves)
