"""Tissues: which cells each cell senses, and which cells are held fixed.

A tissue is described by a row-stochastic neighbour-weight matrix `W` (so that
`s̄ = W @ s`) and a mask of pinned cells that are reset to `pinned_value` after every
step. The dynamics only ever use `neighbour_mean` and `pin`, so a new neighbourhood
(a 2-D grid, any graph) is a new constructor of the weight matrix, nothing more.
"""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._validate import check_choice, check_range

Boundary = Literal["open", "pinned", "periodic"]
BOUNDARIES = ("open", "pinned", "periodic")


class Tissue(eqx.Module):
    """Cells coupled by a fixed neighbour-weight matrix.

    **Fields:**

    - `weights`: `(n, n)` matrix; row `i` gives the weights with which cell `i`
      averages its neighbours (rows sum to one, or zero for pinned cells).
    - `pinned`: boolean `(n,)` mask of cells held at `pinned_value`.
    - `pinned_value`: the value pinned cells are reset to after every step.
    """

    weights: Float[Array, "cells cells"]
    pinned: Bool[Array, " cells"]
    pinned_value: float = eqx.field(static=True)

    @property
    def n_cells(self) -> int:
        return self.weights.shape[0]

    def neighbour_mean(self, s: Float[Array, "*batch cells"]) -> Float[Array, "*batch cells"]:
        """s̄_i, the weighted mean state of cell i's neighbours."""
        return s @ self.weights.T

    def pin(self, s: Float[Array, "*batch cells"]) -> Float[Array, "*batch cells"]:
        """Reset pinned cells to `pinned_value` (identity when none are pinned)."""
        return jnp.where(self.pinned, jnp.asarray(self.pinned_value, s.dtype), s)


class Chain(Tissue):
    """A 1-D chain of `n_cells` cells with nearest-neighbour coupling.

    - `open`: interior cells average left and right; an edge cell senses its one
      neighbour.
    - `pinned`: the two edge cells are held at `pinned_value` and count as
      neighbours with that value (needs `n_cells >= 3`).
    - `periodic`: a ring.
    """

    boundary: str = eqx.field(static=True)

    def __init__(
        self, n_cells: int = 7, boundary: Boundary = "open", pinned_value: float = 0.0
    ):
        check_choice("Chain", "boundary", boundary, BOUNDARIES)
        check_range("Chain", "n_cells", n_cells, ge=3 if boundary == "pinned" else 2,
                    integer=True)
        check_range("Chain", "pinned_value", pinned_value, ge=0.0, le=1.0)
        n = int(n_cells)
        w = np.zeros((n, n), np.float32)
        for i in range(n):
            if boundary == "periodic":
                nbrs = [(i - 1) % n, (i + 1) % n]
            else:
                nbrs = [j for j in (i - 1, i + 1) if 0 <= j < n]
            for j in nbrs:
                w[i, j] += 1.0 / len(nbrs)
        pinned = np.zeros(n, bool)
        if boundary == "pinned":
            pinned[[0, -1]] = True
            w[pinned] = 0.0
        self.weights = jnp.asarray(w)
        self.pinned = jnp.asarray(pinned)
        self.pinned_value = float(pinned_value)
        self.boundary = boundary

    def config(self) -> dict:
        return dict(type="Chain", n_cells=self.n_cells, boundary=self.boundary,
                    pinned_value=self.pinned_value)
