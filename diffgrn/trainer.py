"""The method protocol: a method builds a `Trainer`, pure `init`/`step` functions over
a pytree state (Optax style) that the `train` loop compiles once per phase.

Every method reports the same `StepInfo`, so histories are comparable across methods.
"""

import abc
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PRNGKeyArray, PyTree, Scalar

from .config import Configurable
from .objective import Objective
from .regulator import AbstractRegulator
from .space import AbstractCoordinates, AllLeaves


class StepInfo(NamedTuple):
    """What one iteration of any method reports (NaN where undefined)."""

    soft_utility: Scalar
    grad_norm: Scalar
    finite: Array  # bool scalar: states, utilities and gradients all finite


class Trainer(NamedTuple):
    """A method's pure functions for one objective and regulator structure.

    `step` and `candidate` depend on the regulator's structure only, `init` also on
    its values. A method with phases (`Hybrid`) says when its state has finished one
    (`phase_end`, read between steps) and how the next begins (`next_phase`, given
    that phase's key); the loop then compiles `step` for the new state.
    `replicate_steps` is the simulated replicate-steps per iteration, or a function
    of the state where it changes between phases.
    """

    init: Callable[[PRNGKeyArray], PyTree]
    step: Callable[[PyTree, PRNGKeyArray], tuple[PyTree, StepInfo]]
    candidate: Callable[[PyTree], AbstractRegulator]
    replicate_steps: int | Callable[[PyTree], int]
    phase_end: Callable[[PyTree], bool] | None = None
    next_phase: Callable[[PyTree, PRNGKeyArray], PyTree] | None = None

    def cost(self, state: PyTree) -> int:
        """Simulated replicate-steps of one `step` from `state`."""
        r = self.replicate_steps
        return r(state) if callable(r) else r


class AbstractMethod(Configurable):
    """A training method. Subclasses define `build`; `config()` / `from_config` come
    from `diffgrn.config` (the constructor arguments), `name` is what progress lines,
    run folders and tables call it (the class name unless a subclass says otherwise)."""

    default_iterations: int = eqx.field(static=True, default=200, kw_only=True)

    @abc.abstractmethod
    def build(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        space: "AbstractCoordinates | None" = None,
    ) -> Trainer:
        """The trainer from `regulator`, changing what `space` says (a bound
        `diffgrn.space.SearchSpace`; `None`: every leaf, unbounded), toward
        `objective.direction` × its utility."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def arguments(self) -> dict:
        out = super().arguments()
        if out.get("default_iterations") == 200:  # the default: left out of configs
            del out["default_iterations"]
        return out

    def check_iterations(self, iterations: int) -> None:
        """Raise ValueError when `train(iterations=…)` cannot run this method."""


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every inexact array leaf of `tree` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def coordinates(
    space: AbstractCoordinates | None, regulator: AbstractRegulator
) -> AbstractCoordinates:
    """`space`, or every leaf of `regulator` unbounded (`AllLeaves`) when `None`."""
    if space is None:
        return AllLeaves(regulator)
    if not isinstance(space, AbstractCoordinates):
        raise ValueError(
            "a method's space must be a bound search space (SearchSpace.bind(regulator)); "
            f"got {type(space).__name__}"
        )
    return space


def build(
    method: AbstractMethod,
    objective: Objective,
    regulator: AbstractRegulator,
    space: AbstractCoordinates | None = None,
) -> Trainer:
    """`method.build(objective, regulator[, space])`: a method written before search
    spaces (`build(objective, regulator)`) still trains without one."""
    if space is None:
        return method.build(objective, regulator)
    return method.build(objective, regulator, space)
