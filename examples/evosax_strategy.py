"""Any evosax strategy as a diffgrn method, compared with diffgrn's own CMA-ES.

`diffgrn.Evosax(name, population, sigma, **strategy_params)` wraps an evosax
distribution-based strategy (CMA_ES, Sep_CMA_ES, SNES, xNES, PGPE, Open_ES, …): the
same objective, the same budget accounting, the same `train`/`compare` API. Needs
the optional extra: pip install "diffgrn[evosax]".

    python examples/evosax_strategy.py           # 3 seeds, 100 generations
    python examples/evosax_strategy.py --quick   # 1 seed, 10 generations, small
"""

import argparse

import jax.random as jr
import optax

import diffgrn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T=2, dt=0.05, R=16, 1 seed")
    args = p.parse_args(argv)

    dynamics = diffgrn.Dynamics(t_final=2.0, dt=0.05) if args.quick else diffgrn.Dynamics()
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, boundary="open"),
        dynamics=dynamics,
        replicates=16 if args.quick else 100,
    )
    methods = {
        "cmaes": diffgrn.CMAES(population=20, sigma=0.3),  # diffgrn's own (no Flax)
        "evosax:CMA_ES": diffgrn.Evosax("CMA_ES", population=20, sigma=0.3),
        "evosax:SNES": diffgrn.Evosax("SNES", population=20, sigma=0.3),
        # Constructor arguments and strategy parameters pass through by name:
        "evosax:Open_ES": diffgrn.Evosax(
            "Open_ES", population=20, sigma=0.05, optimizer=optax.adam(0.03)
        ),
        "random": diffgrn.RandomSearch(population=20),  # the baseline to beat
    }
    comparison = diffgrn.compare(
        objective,
        methods,
        key=jr.key(0),
        seeds=1 if args.quick else 3,
        iterations=10 if args.quick else 100,
        make_regulator=lambda k: diffgrn.MLPRegulator(key=k),
    )
    print(comparison.to_markdown())


if __name__ == "__main__":
    main()
