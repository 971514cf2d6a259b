"""What every study shares: arguments, the base objective, a trained regulator, output."""

import argparse
import functools
import json
import math
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import diffgrn
from diffgrn.options import TISSUE_OPTIONS, add_tissue_options, tissue_from_options

NOISES = {"counter": diffgrn.CounterNoise, "grid": diffgrn.GridNoise}
"""The `--noise` choices: the noise object each names."""


def noise(args=None) -> diffgrn.AbstractNoise:
    """The noise `--noise` names (`CounterNoise()` without one)."""
    return NOISES[getattr(args, "noise", None) or "counter"]()


def parser(name: str, doc: str, model: bool = False) -> argparse.ArgumentParser:
    """The options every study takes; with `model`, also the tissue and genes options
    (`--tissue`, `--size`, `--boundary`, `--genes`, `--inputs`) that `base_objective`
    and `new_regulator` then follow."""
    p = argparse.ArgumentParser(
        prog=f"python -m studies {name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    p.add_argument("--out", type=Path, default=None, help=f"default runs/study-{name}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--noise",
        choices=tuple(NOISES),
        default="counter",
        help="how the Brownian increments are drawn: counter (CounterNoise, the default) "
        "or grid (GridNoise, diffgrn <= 0.4's default; reproduces the figures the docs quote)",
    )
    p.add_argument(
        "--regulator",
        type=Path,
        default=None,
        help="a saved regulator folder (diffgrn train --out …/best) to use as "
        "the trained regulator instead of a short ES run",
    )
    if model:
        g = p.add_argument_group("model (default: model.md's 7-cell open chain; gene 0 read out)")
        add_tissue_options(g, cells=False)
    return p


def tissue(args) -> diffgrn.Tissue:
    """The tissue the model options name (model.md's 7-cell open chain by default)."""
    if getattr(args, "tissue", None) is None:
        return diffgrn.Chain(7, "open")
    return tissue_from_options(args)


def new_regulator(args, key, output_scale: float = 1.0) -> diffgrn.MLPRegulator:
    """A freshly initialised MLP for the model options' genes and inputs (Equinox's
    default initialisation at `output_scale=1`, as the first version)."""
    return diffgrn.MLPRegulator(
        key=key,
        output_scale=output_scale,
        genes=getattr(args, "genes", 1),
        inputs=getattr(args, "inputs", "neighbours"),
    )


def base_objective(quick: bool, args=None, **dynamics) -> diffgrn.Objective:
    """model.md defaults (h = 0.1, the first version's bandwidth; the studies also
    start from Equinox's default MLP initialisation, `output_scale=1`, as it did);
    quick: T = 2, dt = 0.02, R = 32. With `args` from a `parser(..., model=True)`,
    on the tissue and genes they name; with `args` from any study's parser, with the
    noise `--noise` names."""
    dyn = dict(t_final=2.0, dt=0.02) if quick else {}
    dyn.setdefault("noise", noise(args))
    dyn.update(dynamics)
    return diffgrn.Objective(
        tissue=tissue(args),
        dynamics=diffgrn.Dynamics(**dyn),
        bandwidth=0.1,
        replicates=32 if quick else 100,
        genes=getattr(args, "genes", 1),
    )


def trained_regulator(args):
    """An ES-trained regulator: loaded from --regulator, or a short (μ+λ)-ES run on
    the base objective (cached, so studies run in one process share it)."""
    if args.regulator is not None:
        return diffgrn.load(args.regulator).regulator
    model = tuple(getattr(args, k, None) for k in TISSUE_OPTIONS)
    return _short_es(args.quick, args.seed, model, getattr(args, "noise", None) or "counter")


@functools.lru_cache(maxsize=4)
def _short_es(quick: bool, seed: int, model: tuple, noise: str = "counter"):
    options = dict(zip(TISSUE_OPTIONS, model)) if model[0] is not None else {}
    args = argparse.Namespace(**options, noise=noise)
    reg = new_regulator(args, jr.key(seed))
    res = diffgrn.train(
        base_objective(quick, args),
        reg,
        "es",
        key=jr.key(1000 + seed),
        iterations=8 if quick else 60,
        progress=False,
    )
    return res.best_regulator


def to_jsonable(x):
    if isinstance(x, diffgrn.Configurable):
        return to_jsonable(x.config())
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        x = np.asarray(x)
        return to_jsonable(x.tolist()) if x.ndim else to_jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


class Output:
    """The study's output folder: `results.json` plus figures."""

    def __init__(self, name: str, args):
        self.dir = args.out or Path("runs") / f"study-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name, self.t0 = name, time.perf_counter()
        self.meta = dict(
            study=name,
            quick=args.quick,
            seed=args.seed,
            noise=getattr(args, "noise", "counter"),
            device=jax.devices()[0].device_kind,
        )
        if getattr(args, "tissue", None) is not None:
            self.meta["model"] = {k: getattr(args, k) for k in TISSUE_OPTIONS}

    def write(self, results: dict) -> Path:
        self.meta["seconds"] = round(time.perf_counter() - self.t0, 1)
        path = self.dir / "results.json"
        path.write_text(json.dumps(to_jsonable(dict(**self.meta, results=results)), indent=1))
        print(f"{self.name}: {self.meta['seconds']} s, results in {path}")
        return path

    def figure(self, fig, filename: str):
        fig.tight_layout()
        fig.savefig(self.dir / filename, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)


def floats(tree: dict) -> dict:
    return {k: float(v) for k, v in tree.items()}
