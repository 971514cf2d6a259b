"""Command-line options shared by the `diffgrn` command and the studies of a checkout
(`python -m studies NAME`): the tissue and genes options, and the tissue they name."""

import argparse

from .tissue import Chain, Lattice, Tissue

TISSUE_OPTIONS = ("tissue", "size", "boundary", "genes", "inputs")
"""The destinations `add_tissue_options` adds (and `--cells`, with `cells=True`)."""


def add_tissue_options(group, cells: bool = True) -> None:
    """Add `--tissue`, `--size`, `--boundary`, (`--cells`,) `--genes` and `--inputs` to
    an argparse parser or argument group; `tissue_from_options` reads them back."""
    group.add_argument(
        "--tissue",
        choices=("chain", "square", "hex"),
        default="chain",
        help="chain (model.md), or a square or hexagonal (odd-r offset) lattice",
    )
    group.add_argument(
        "--size",
        default=None,
        help="cells: 7 for a chain, 20x20 (rows x cols) or 20 (20 x 20) for "
        "a lattice (None: --cells, 7, for a chain; 10x10 for a lattice)",
    )
    group.add_argument(
        "--boundary", choices=("open", "pinned", "periodic"), default="open", help="tissue boundary"
    )
    if cells:
        group.add_argument("--cells", type=int, default=7, help="chain length")
    group.add_argument("--genes", type=int, default=1, help="genes per cell")
    group.add_argument(
        "--inputs",
        choices=("neighbours", "both"),
        default="neighbours",
        help="mlp regulator: neighbours' mean only, or the cell's own state too",
    )


def tissue_from_options(args: argparse.Namespace) -> Tissue:
    """The tissue that parsed `--tissue`, `--size`, `--boundary` and `--cells` name
    (without `--cells`, a chain has 7 cells); a `ValueError` names a bad `--size`."""
    if args.tissue == "chain":
        if args.size is None:
            return Chain(getattr(args, "cells", 7), args.boundary)
        if not args.size.strip().isdigit():
            raise ValueError(f"--size for a chain is one number of cells; got {args.size!r}")
        return Chain(int(args.size), args.boundary)
    text = (args.size or "10x10").lower()
    try:
        dims = [int(v) for v in text.split("x")]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2:
        raise ValueError(
            f"--size for a lattice is ROWSxCOLS (e.g. 20x20) or one number; got {args.size!r}"
        )
    return Lattice(dims[0], dims[1], args.tissue, args.boundary)
