"""Gradient diagnostics: instruments that show where gradient signal dies.

Everything here works on any scalar function `fn(regulator, key)` of an Equinox
module (for example `objective.loss` or `lambda r, k: objective.hard(r, k).value`),
or on an `Objective` directly. Gradients are pytrees shaped like the regulator's
floating-point leaves.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Scalar

from ._typing import KeyBatch
from ._validate import check_instance
from .brownian import GridBrownianPath
from .objective import AbstractEvaluation, Objective, SoftUtility
from .regulator import AbstractRegulator, drift_stiffness, max_jacobian_row_sum

ScalarFn = Callable[[PyTree, PRNGKeyArray], Scalar]


# --------------------------------------------------------------------------- norms


def tree_norm(tree: PyTree) -> Scalar:
    """Euclidean norm over all floating-point leaves."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.sqrt(sum(jnp.sum(x**2) for x in leaves))


def group_norms(tree: PyTree) -> dict[str, float]:
    """Norm of each floating-point leaf, keyed by its path (e.g. `.mlp.layers[0].weight`)."""
    out = {}
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if eqx.is_inexact_array(x):
            out[jax.tree_util.keystr(path)] = float(jnp.linalg.norm(jnp.ravel(x)))
    return out


def cosine_similarity(a: PyTree, b: PyTree) -> Scalar:
    """cos∠(a, b) of two gradient pytrees (0 if either is zero)."""
    fa, _ = jax.flatten_util.ravel_pytree(eqx.filter(a, eqx.is_inexact_array))
    fb, _ = jax.flatten_util.ravel_pytree(eqx.filter(b, eqx.is_inexact_array))
    den = jnp.linalg.norm(fa) * jnp.linalg.norm(fb)
    return jnp.where(den > 0, fa @ fb / jnp.where(den > 0, den, 1.0), 0.0)


# ------------------------------------------------------------------ estimators


def gradient_samples(fn: ScalarFn, params: PyTree, keys: KeyBatch) -> PyTree:
    """Pathwise gradients of `fn(params, key)` for each key, stacked on axis 0."""
    grad = eqx.filter_grad(fn)
    return eqx.filter_vmap(grad, in_axes=(None, 0))(params, keys)


def gradient_snr(samples: PyTree) -> dict[str, Scalar]:
    """Signal-to-noise ratio of a gradient estimator from stacked samples.

    With samples g_1..g_K of a random vector g: `snr = ‖E g‖ / sqrt(tr Cov g)`, the
    ratio for a *single* estimate (for g ~ N(μ, s² I_d), snr = ‖μ‖ / (s √d)). Also
    returns the mean norm, the noise norm and the mean of per-sample norms.
    """
    flat = jax.vmap(
        lambda t: jax.flatten_util.ravel_pytree(eqx.filter(t, eqx.is_inexact_array))[0]
    )(samples)
    mean = jnp.mean(flat, axis=0)
    noise = jnp.sqrt(jnp.sum(jnp.var(flat, axis=0, ddof=1)))
    signal = jnp.linalg.norm(mean)
    return dict(
        snr=jnp.where(noise > 0, signal / jnp.where(noise > 0, noise, 1.0), jnp.inf),
        mean_norm=signal,
        noise_norm=noise,
        sample_norm=jnp.mean(jnp.linalg.norm(flat, axis=1)),
    )


def _flat_fn(fn: ScalarFn, params: PyTree):
    p, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(p)
    f = lambda x, key: fn(eqx.combine(unravel(x), static), key)
    return f, flat, unravel


def finite_difference_gradient(
    fn: ScalarFn, params: PyTree, key: PRNGKeyArray, eps: float = 1e-3
) -> PyTree:
    """Central differences (f(θ + εe_i) − f(θ − εe_i)) / 2ε with common random numbers
    (the same `key`, hence the same noise, on both sides of every difference)."""
    f, flat, unravel = _flat_fn(fn, params)
    basis = jnp.eye(flat.size, dtype=flat.dtype) * eps
    diff = jax.vmap(lambda e: f(flat + e, key) - f(flat - e, key))(basis)
    return unravel(diff / (2 * eps))


def es_gradient(
    fn: ScalarFn,
    params: PyTree,
    key: PRNGKeyArray,
    sigma: float = 0.05,
    pairs: int = 32,
    common_noise: bool = True,
) -> PyTree:
    """Antithetic Gaussian-smoothing (OpenAI-ES) estimate of ∇ E_ε[f(θ + σε)].

    ĝ = (1 / 2σP) Σ_p [f(θ + σε_p) − f(θ − σε_p)] ε_p. With `common_noise`, both sides
    of a pair share one simulation key. Costs 2·`pairs` evaluations of `fn`.
    """
    f, flat, unravel = _flat_fn(fn, params)
    k_eps, k_sim = jr.split(key)
    eps = jr.normal(k_eps, (pairs, flat.size), flat.dtype)
    sim_keys = jr.split(k_sim, pairs if common_noise else 2 * pairs)
    k_plus = sim_keys[:pairs]
    k_minus = sim_keys[:pairs] if common_noise else sim_keys[pairs:]
    fp = jax.vmap(lambda e, k: f(flat + sigma * e, k))(eps, k_plus)
    fm = jax.vmap(lambda e, k: f(flat - sigma * e, k))(eps, k_minus)
    return unravel(((fp - fm) @ eps) / (2 * sigma * pairs))


# ------------------------------------------------------------------ dynamics


def tangent_map(
    objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
) -> Float[Array, "n n"]:
    """J = ∂s(T)/∂s(0) of one replicate (noise path fixed by `key`), with the state
    flattened cell-major: `(cells·genes, cells·genes)`."""
    dyn, tissue = objective.dynamics, objective.tissue
    s0, path = dyn.draw(tissue, key[None], objective.genes)
    size = s0[0].size
    flat = lambda s: dyn.solve(regulator, tissue, s.reshape(s0.shape), path)[0].ravel()
    return jax.jacrev(flat)(s0.ravel()).reshape(size, size)


def tangent_growth(objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray) -> Scalar:
    """‖∂s(T)/∂s(0)‖₂: how much the dynamics amplify (> 1) or forget (< 1) a
    perturbation of the initial state over the horizon T."""
    return jnp.linalg.norm(tangent_map(objective, regulator, key), ord=2)


def lyapunov_exponent(
    objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
) -> Scalar:
    """Finite-time largest Lyapunov exponent, log ‖∂s(T)/∂s(0)‖₂ / T (−inf when the
    tangent map is exactly zero, e.g. every cell clipped)."""
    return jnp.log(tangent_growth(objective, regulator, key)) / objective.dynamics.t_final


def adjoint_norms(
    objective: Objective,
    regulator: AbstractRegulator,
    key: PRNGKeyArray,
    utility: AbstractEvaluation | None = None,
) -> Float[Array, " steps"]:
    """‖∂U/∂ΔW_t‖ for every step t, summed over replicates, of `utility`
    (`SoftUtility()`, the default, or `HardUtility()`).

    Noise enters each step as σ·ΔW_t, so this is σ times the norm of the backprop
    adjoint at step t: it shows where along the horizon gradient signal vanishes,
    explodes, or is cut by the clip.
    """
    utility = SoftUtility() if utility is None else utility
    check_instance("adjoint_norms", "utility", utility, AbstractEvaluation)
    dyn, tissue = objective.dynamics, objective.tissue
    s0, path = objective.draw(key)
    if path is None:
        raise ValueError("adjoint_norms needs noise: Dynamics.sigma is 0")
    increments = dyn.active_noise.increments(path, dyn.n_steps, dyn.dt)

    def u(inc):  # the same noise, held as an array to differentiate against
        p = GridBrownianPath(0.0, dyn.t_final, dyn.dt, inc)
        s = dyn.solve(regulator, tissue, s0, p)
        return utility.of(objective, s).value

    g = jax.grad(u)(increments)
    return jnp.sqrt(jnp.sum(g**2, axis=tuple(range(1, g.ndim))))


def stage_gradients(
    objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
) -> dict[str, Scalar]:
    """Gradient norms of U_soft along the pipeline, from the utility back to θ:
    ∂U/∂fates, ∂U/∂s(T), ∂U/∂s(0) (summed over replicates) and ∂U/∂θ; plus the
    separate θ-gradients of S_pat and S_rep."""
    dyn, tissue = objective.dynamics, objective.tissue
    s0, path = objective.draw(key)
    params, static = eqx.partition(regulator, eqx.is_inexact_array)

    def final(p, s_init):
        return dyn.solve(eqx.combine(p, static), tissue, s_init, path)

    s_t = final(params, s0)
    fates, readout_vjp = jax.vjp(objective.fates, s_t)
    util, util_vjp = jax.vjp(lambda f: objective.utility.soft(f, objective.bandwidth), fates)
    one = jnp.ones(())
    zero = jnp.zeros(())
    (g_fates,) = util_vjp(type(util)(one, zero, zero))
    (g_state,) = readout_vjp(g_fates)
    _, dyn_vjp = jax.vjp(final, params, s0)
    g_params, g_s0 = dyn_vjp(g_state)
    parts = {}
    for name, cot in (("s_pat", (zero, one, zero)), ("s_rep", (zero, zero, one))):
        (gf,) = util_vjp(type(util)(*cot))
        parts[name] = tree_norm(dyn_vjp(readout_vjp(gf)[0])[0])
    return dict(
        utility=util.value,
        fates=tree_norm(g_fates),
        final_state=tree_norm(g_state),
        initial_state=tree_norm(g_s0),
        params=tree_norm(g_params),
        params_s_pat=parts["s_pat"],
        params_s_rep=parts["s_rep"],
    )


def saturation(
    objective: Objective,
    regulator: AbstractRegulator,
    key: PRNGKeyArray,
    eps: float = 0.01,
) -> dict[str, Scalar]:
    """Where the flat parts of the pipeline are active:

    - `final_at_bound`: fraction of final states exactly at 0 or 1 (clip active:
      zero derivative through that cell at the last step),
    - `steps_clipped`: fraction of (replicate, step) pairs with at least one clipped
      cell, and `cells_clipped`: fraction of (replicate, step, cell) at a bound,
    - `fates_saturated`: fraction of soft fates within `eps` of 0 or 1.
    """
    traj = objective.simulate(regulator, key, save_every=1)[:, 1:]  # (R, T, N, G)
    free = ~objective.tissue.pinned[:, None]
    at_bound = ((traj == 0.0) | (traj == 1.0)) & free
    final = traj[:, -1]
    fates = objective.fates(final)
    n_free = jnp.sum(~objective.tissue.pinned)
    genes, m = traj.shape[-1], fates.shape[-1]
    return dict(
        final_at_bound=jnp.sum(at_bound[:, -1]) / (n_free * genes * final.shape[0]),
        steps_clipped=jnp.mean(jnp.any(at_bound, axis=(-2, -1))),
        cells_clipped=jnp.sum(at_bound) / (n_free * genes * traj.shape[0] * traj.shape[1]),
        fates_saturated=jnp.sum(((fates < eps) | (fates > 1 - eps)) & free)
        / (n_free * m * final.shape[0]),
    )


def utility_part_gradients(
    objective: Objective, regulator: AbstractRegulator, key: PRNGKeyArray
) -> dict[str, PyTree]:
    """θ-gradients of U_soft and of its two parts S_pat and S_rep (∇U = ∇S_pat − ∇S_rep)."""
    out = {}
    for name, pick in (("value", 0), ("s_pat", 1), ("s_rep", 2)):
        out[name] = eqx.filter_grad(lambda r, pick=pick: objective.soft(r, key)[pick])(regulator)
    return out


# --------------------------------------------------------------------------- resolution


def stiffness(
    regulator: AbstractRegulator, dt: float, points: int = 401, samples: int = 4096
) -> Scalar:
    """dt · max ‖[∂f/∂s, ∂f/∂s̄]‖_∞ over the homogeneous states s = s̄ = x·1,
    x in [0, 1] (`points` grid points), and over `samples` states (s, s̄) drawn
    uniformly from [0, 1]^2G (a fixed key), where a cell's own state and its
    neighbours' mean differ; for one gene and neighbours only this is dt · max |f'(s̄)|.

    The neighbour-averaging matrix has eigenvalues in [−1, 1], so fixed-step Euler
    resolves the drift only where dt·|f'| < 2 (linear stability), and accurately where
    it is well below 1. A larger value means the utility belongs to the discrete map,
    not to the SDE: check it at a smaller dt (the `resolution` study, or `assess`).
    """
    return drift_stiffness(regulator, dt, points, samples)


def visited_stiffness(
    objective: Objective,
    regulator: AbstractRegulator,
    key: PRNGKeyArray,
    samples: int = 4096,
    snapshots: int = 50,
) -> Scalar:
    """dt · max ‖[∂f/∂s, ∂f/∂s̄]‖_∞ over the states a simulation actually visits:
    (s_i, s̄_i) of every cell at `snapshots` times of one draw of the objective's
    replicates, subsampled to `samples` points (a fixed key)."""
    dyn = objective.dynamics
    every = max(1, dyn.n_steps // snapshots)
    traj = objective.simulate(regulator, key, save_every=every)  # (R, times, N, G)
    sbar = objective.tissue.neighbour_mean(traj)
    g = traj.shape[-1]
    s_flat, sbar_flat = traj.reshape(-1, g), sbar.reshape(-1, g)
    pick = jr.choice(jr.key(1), s_flat.shape[0], (min(samples, s_flat.shape[0]),), replace=False)
    return dyn.dt * max_jacobian_row_sum(regulator, s_flat[pick], sbar_flat[pick])
