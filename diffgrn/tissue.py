"""Tissues: which cells each cell senses, and which cells are held fixed.

A tissue stores, per cell, a padded table of neighbour indices and weights
(`neighbours`, `weights`, both `(cells, k)`; a row's weights sum to one, padding has
weight 0) and a mask of pinned cells that are reset to `pinned_value` after every
step. The neighbour mean of a state `(…, cells, genes)` is one gather and a weighted
sum over the `k` columns: memory and time O(cells · k), never O(cells²).

- `Chain(n_cells, boundary)`: a row of cells (model.md).
- `Lattice(rows, cols, geometry="square" | "hex", boundary)`: a 2-D sheet.
- `Graph(n_cells, edges, pinned=…)`: any neighbourhood.
- `Cell()`: one cell on its own (a deterministic circuit: s̄ = 0, nothing pinned).
"""

from collections.abc import Sequence
from typing import Literal, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._memory import available_memory
from ._validate import check_choice, check_range
from .config import Configurable

Boundary = Literal["open", "pinned", "periodic"]


class _BoundaryRule(NamedTuple):
    wraps: bool  # neighbour indices wrap round (a ring, a torus)
    pins: bool  # the border cells are held at `pinned_value`
    least_chain: int  # the fewest cells of a chain
    least_side: int  # the fewest rows (and columns) of a lattice


class _Geometry(NamedTuple):
    offsets: tuple  # (dr, dc on even rows, dc on odd rows) of each neighbour
    shift: float  # plotting: odd rows shifted this far right
    height: float  # plotting: distance between rows
    even_rows_to_wrap: bool  # a periodic sheet needs an even number of rows


BOUNDARIES = {
    "open": _BoundaryRule(wraps=False, pins=False, least_chain=1, least_side=1),
    "pinned": _BoundaryRule(wraps=False, pins=True, least_chain=3, least_side=3),
    "periodic": _BoundaryRule(wraps=True, pins=False, least_chain=2, least_side=2),
}
GEOMETRIES = {
    "square": _Geometry(
        offsets=((-1, 0, 0), (1, 0, 0), (0, -1, -1), (0, 1, 1)),
        shift=0.0,
        height=1.0,
        even_rows_to_wrap=False,
    ),
    "hex": _Geometry(  # odd-r offset coordinates
        offsets=((0, -1, -1), (0, 1, 1), (-1, -1, 0), (-1, 0, 1), (1, -1, 0), (1, 0, 1)),
        shift=0.5,
        height=float(np.sqrt(3) / 2),
        even_rows_to_wrap=True,
    ),
}


class Tissue(Configurable):
    """Cells coupled through a padded neighbour table.

    **Fields:**

    - `neighbours`: `(cells, k)` int32; row `i` lists the cells that cell `i` senses
      (padding: any valid index with weight 0).
    - `weights`: `(cells, k)`; the weight of each listed neighbour (each row sums to
      one, or to zero for pinned cells and cells with no neighbour).
    - `pinned`: boolean `(cells,)` mask of cells held at `pinned_value`.
    - `pinned_value`: the value pinned cells are reset to after every step.
    """

    neighbours: Int[Array, "cells k"]
    weights: Float[Array, "cells k"]
    pinned: Bool[Array, " cells"]
    pinned_value: float = eqx.field(static=True)

    @property
    def n_cells(self) -> int:
        return self.neighbours.shape[0]

    def neighbour_mean(
        self, s: Float[Array, "*batch cells genes"]
    ) -> Float[Array, "*batch cells genes"]:
        """s̄_i, the weighted mean state of cell i's neighbours (gene by gene)."""
        k = self.neighbours.shape[1]
        if k > 8:  # wide tables (hubs in a graph): one gather, not k unrolled ones
            gathered = s[..., self.neighbours, :]  # (*batch, cells, k, genes)
            return jnp.sum(gathered * self.weights[:, :, None], axis=-2)
        # Narrow tables (chains, lattices): one gather per column is ~3x faster than
        # the single (…, cells, k, genes) gather inside the ES's vmapped population.
        out = s[..., self.neighbours[:, 0], :] * self.weights[:, 0, None]
        for j in range(1, k):
            out = out + s[..., self.neighbours[:, j], :] * self.weights[:, j, None]
        return out

    def pin(self, s: Float[Array, "*batch cells genes"]) -> Float[Array, "*batch cells genes"]:
        """Reset pinned cells to `pinned_value` (identity when none are pinned)."""
        return jnp.where(self.pinned[:, None], jnp.asarray(self.pinned_value, s.dtype), s)

    def positions(self) -> np.ndarray:
        """`(cells, 2)` plotting coordinates (x, y) of the cells."""
        return np.stack([np.arange(self.n_cells, dtype=float), np.zeros(self.n_cells)], axis=1)

    def neighbour_pairs(self) -> np.ndarray:
        """`(pairs, 2)` the (i, j) with j listed (with positive weight) as i's neighbour."""
        nb, w = np.asarray(self.neighbours), np.asarray(self.weights)
        i = np.repeat(np.arange(self.n_cells), nb.shape[1])
        keep = w.ravel() > 0
        return np.stack([i[keep], nb.ravel()[keep]], axis=1)


MAX_CELLS = 2**31 - 1  # neighbour indices are int32


def _check_cells(owner: str, field: str, n_cells: float, width: int) -> None:
    """Refuse a tissue whose construction cannot fit, before building anything:
    about 48 bytes per neighbour slot while the table is built."""
    check_range(owner, field, n_cells, le=MAX_CELLS, integer=True)
    need, have = 48 * int(n_cells) * width, available_memory()
    if need > have:
        raise ValueError(
            f"{owner}: {int(n_cells)} cells need about {need / 2**30:.3g} GiB to build the "
            f"neighbour table but about {have / 2**30:.3g} GiB are available: lower "
            f"{owner}.{field}"
        )


def _table(n: int, rows: np.ndarray, cols: np.ndarray, pinned: np.ndarray):
    """Padded (neighbours, weights) tables from directed pairs cell `rows[e]` senses
    cell `cols[e]` (duplicates count twice); each cell averages what it senses with
    equal weights; pinned cells sense nothing."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    keep = ~pinned[rows]
    rows, cols = rows[keep], cols[keep]
    degree = np.bincount(rows, minlength=n)
    k = max(1, int(degree.max()) if n else 1)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    slot = np.arange(rows.size) - start[rows]
    nb = np.tile(np.arange(n, dtype=np.int32)[:, None], (1, k))  # padding: self, weight 0
    w = np.zeros((n, k), np.float32)
    nb[rows, slot] = cols
    w[rows, slot] = (1.0 / np.maximum(degree, 1))[rows]
    return jnp.asarray(nb), jnp.asarray(w)


class Chain(Tissue):
    """A 1-D chain of `n_cells` cells with nearest-neighbour coupling.

    - `open`: interior cells average left and right; an edge cell senses its one
      neighbour.
    - `pinned`: the two edge cells are held at `pinned_value` and count as
      neighbours with that value (needs `n_cells >= 3`).
    - `periodic`: a ring.

    An open chain of one cell is a cell on its own (s̄ = 0; `Cell()` is the same
    tissue without the gather).
    """

    boundary: str = eqx.field(static=True)

    def __init__(self, n_cells: int = 7, boundary: Boundary = "open", pinned_value: float = 0.0):
        check_choice("Chain", "boundary", boundary, BOUNDARIES)
        rule = BOUNDARIES[boundary]
        check_range("Chain", "n_cells", n_cells, ge=rule.least_chain, integer=True)
        check_range("Chain", "pinned_value", pinned_value, ge=0.0, le=1.0)
        _check_cells("Chain", "n_cells", n_cells, 2)
        n = int(n_cells)
        i = np.arange(n)
        rows, cols = np.concatenate([i, i]), np.concatenate([i - 1, i + 1])
        if rule.wraps:
            cols = cols % n
        else:
            inside = (cols >= 0) & (cols < n)
            rows, cols = rows[inside], cols[inside]
        pinned = np.zeros(n, bool)
        if rule.pins:
            pinned[[0, -1]] = True
        self.neighbours, self.weights = _table(n, rows, cols, pinned)
        self.pinned = jnp.asarray(pinned)
        self.pinned_value = float(pinned_value)
        self.boundary = boundary


class Lattice(Tissue):
    """A 2-D sheet of `rows × cols` cells; cell `(r, c)` has index `r * cols + c`.

    - `geometry="square"`: 4 neighbours (up, down, left, right).
    - `geometry="hex"`: 6 neighbours, in "odd-r" offset coordinates: odd rows are
      shifted half a cell to the right, so cell `(r, c)` touches `(r, c ± 1)` and, in
      the rows above and below, `(r ± 1, c − 1)` and `(r ± 1, c)` when `r` is even,
      `(r ± 1, c)` and `(r ± 1, c + 1)` when `r` is odd. Periodic hex sheets need an
      even number of rows.
    - `boundary`: `"open"` (border cells average the neighbours they have),
      `"pinned"` (border cells are held at `pinned_value` and count as neighbours
      with that value) or `"periodic"` (a torus: at least 3 rows and 3 columns, so
      no cell is its neighbour's neighbour through both wraps).
    """

    rows: int = eqx.field(static=True)
    cols: int = eqx.field(static=True)
    geometry: str = eqx.field(static=True)
    boundary: str = eqx.field(static=True)

    def __init__(
        self,
        rows: int,
        cols: int,
        geometry: Literal["square", "hex"] = "square",
        boundary: Boundary = "periodic",
        pinned_value: float = 0.0,
    ):
        check_choice("Lattice", "geometry", geometry, GEOMETRIES)
        check_choice("Lattice", "boundary", boundary, BOUNDARIES)
        rule, shape = BOUNDARIES[boundary], GEOMETRIES[geometry]
        for name, side in (("rows", rows), ("cols", cols)):
            if rule.wraps and side == 2:  # both wraps reach one cell: it would count twice
                raise ValueError(
                    f"Lattice.{name} must be >= 3 for a periodic sheet (with 2, the cell "
                    "across both wraps is the same neighbour twice, so it would weigh double "
                    f"in the neighbour mean); got {side}"
                )
        check_range("Lattice", "rows", rows, ge=rule.least_side, integer=True)
        check_range("Lattice", "cols", cols, ge=rule.least_side, integer=True)
        check_range("Lattice", "pinned_value", pinned_value, ge=0.0, le=1.0)
        _check_cells("Lattice", "rows x cols", float(rows) * float(cols), 6)
        rows, cols = int(rows), int(cols)
        if rows * cols < 2:
            raise ValueError(f"Lattice must have at least 2 cells; got {rows} x {cols}")
        if shape.even_rows_to_wrap and rule.wraps and rows % 2:
            raise ValueError(
                f"Lattice.rows must be even for a periodic {geometry} sheet (odd-r "
                f"offset rows pair up across the wrap); got {rows}"
            )
        r, c = np.divmod(np.arange(rows * cols), cols)
        src, dst = [], []
        for dr, dc_even, dc_odd in shape.offsets:
            rr, cc = r + dr, c + np.where(r % 2 == 0, dc_even, dc_odd)
            if rule.wraps:
                ok = np.ones_like(rr, bool)
                rr, cc = rr % rows, cc % cols
            else:
                ok = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
            src.append(np.flatnonzero(ok))
            dst.append((rr * cols + cc)[ok])
        border = (r == 0) | (r == rows - 1) | (c == 0) | (c == cols - 1)
        pinned = border if rule.pins else np.zeros(rows * cols, bool)
        self.neighbours, self.weights = _table(
            rows * cols, np.concatenate(src), np.concatenate(dst), pinned
        )
        self.pinned = jnp.asarray(pinned)
        self.pinned_value = float(pinned_value)
        self.rows, self.cols, self.geometry, self.boundary = rows, cols, geometry, boundary

    def positions(self) -> np.ndarray:
        r, c = np.divmod(np.arange(self.n_cells), self.cols)
        shape = GEOMETRIES[self.geometry]
        return np.stack([c + shape.shift * (r % 2), -r * shape.height], axis=1)


class Graph(Tissue):
    """Any neighbourhood: `edges` is a sequence of `(i, j)` cell pairs (or an
    `(edges, 2)` array), each listed once. Each cell senses the equal-weight mean of
    its distinct neighbours; an edge couples both ways unless `directed=True` (then
    cell `i` senses `j`).
    `pinned` lists the indices of cells held at `pinned_value` (or is a boolean mask
    of length `n_cells`). A cell with no neighbour senses s̄ = 0. The table is as wide
    as the largest degree: a hub sensing d cells costs n_cells × d memory."""

    def __init__(
        self,
        n_cells: int,
        edges: Sequence[Sequence[int]] | Int[Array | np.ndarray, "edges 2"] | None,
        pinned: Sequence[int] = (),
        pinned_value: float = 0.0,
        directed: bool = False,
    ):
        check_range("Graph", "n_cells", n_cells, ge=1, integer=True)
        check_range("Graph", "pinned_value", pinned_value, ge=0.0, le=1.0)
        _check_cells("Graph", "n_cells", n_cells, 1)
        n = int(n_cells)
        try:
            e = np.asarray(edges if edges is not None else (), dtype=np.float64)
            e = e.reshape(-1, 2) if e.size else np.zeros((0, 2))
            if e.ndim != 2 or (np.asarray(edges).ndim == 2 and np.asarray(edges).shape[1] != 2):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(
                "Graph.edges must be a sequence of (i, j) cell pairs or an "
                f"(edges, 2) array; got {edges!r}"[:300]
            ) from None
        if e.size and (np.any(e != np.round(e)) or np.any(e < 0) or np.any(e >= n)):
            bad = e[(e != np.round(e)).any(1) | (e < 0).any(1) | (e >= n).any(1)][0]
            raise ValueError(
                f"Graph.edges must join cells 0..{n - 1}; got the edge {tuple(bad.tolist())}"
            )
        e = e.astype(np.int64)
        if np.any(e[:, 0] == e[:, 1]):
            raise ValueError(
                f"Graph.edges must not join a cell to itself; got "
                f"{tuple(e[e[:, 0] == e[:, 1]][0].tolist())}"
            )
        p = np.asarray(pinned)
        if p.dtype == bool:
            if p.shape != (n,):
                raise ValueError(
                    f"Graph.pinned as a mask must have {n} entries; got shape {p.shape}"
                )
            p = np.flatnonzero(p)
        try:
            p = np.asarray(p, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"Graph.pinned must list cells 0..{n - 1}; got {pinned!r}") from None
        if p.size and (np.any(p != np.round(p)) or np.any(p < 0) or np.any(p >= n)):
            raise ValueError(f"Graph.pinned must list cells 0..{n - 1}; got {list(pinned)}")
        mask = np.zeros(n, bool)
        mask[p.astype(np.int64)] = True
        if mask.all():
            raise ValueError(
                f"Graph.pinned holds all {n} cells: nothing is left to pattern (every "
                "regulator would score the same); leave some cells free"
            )
        rows, cols = e[:, 0], e[:, 1]
        if not directed:
            rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
        pairs, counts = np.unique(np.stack([rows, cols], 1), axis=0, return_counts=True)
        if (counts > 1).any():
            i, j = pairs[counts > 1][0].tolist()
            raise ValueError(
                f"Graph.edges joins cell {i} to cell {j} more than once"
                + ("" if directed else " ((i, j) and (j, i) are one undirected edge)")
                + ": each cell senses the equal-weight mean of its distinct neighbours, so a "
                "repeat would weigh double; list each edge once"
            )
        self.neighbours, self.weights = _table(n, rows, cols, mask)
        self.pinned = jnp.asarray(mask)
        self.pinned_value = float(pinned_value)

    def arguments(self) -> dict:
        # The directed pairs of the table, in table order: rebuilds the same table.
        return dict(
            n_cells=self.n_cells,
            edges=self.neighbour_pairs().tolist(),
            pinned=np.flatnonzero(np.asarray(self.pinned)).tolist(),
            pinned_value=self.pinned_value,
            directed=True,
        )


class Cell(Tissue):
    """One cell on its own: no neighbours (s̄ = 0) and nothing pinned, so a solve is
    the regulator's own circuit (the gene-circuit models of the discovery
    literature). The neighbour mean and the pin are skipped, not computed as zeros."""

    def __init__(self):
        self.neighbours = jnp.zeros((1, 1), jnp.int32)
        self.weights = jnp.zeros((1, 1), jnp.float32)
        self.pinned = jnp.zeros((1,), bool)
        self.pinned_value = 0.0

    def neighbour_mean(
        self, s: Float[Array, "*batch cells genes"]
    ) -> Float[Array, "*batch cells genes"]:
        return jnp.zeros_like(s)

    def pin(self, s: Float[Array, "*batch cells genes"]) -> Float[Array, "*batch cells genes"]:
        return s
