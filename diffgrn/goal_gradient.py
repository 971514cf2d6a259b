"""A gradient goal-conditioned optimiser for IMGEP: each goal's nearest stored point,
mutated as `GoalIMGEP` does, then `steps` normalised gradient steps on the goal
distance through the differentiable simulation (in the box's unit coordinates,
clipped to the box), and that point is the one simulated and stored.

AutoDiscJax's goal-conditioned optimiser is one EA mutation per goal (`GoalIMGEP`);
no anchor ships a gradient one. `studies/goal_gradient.py` measures whether it fills
more bins per solve. Each step is one solve and its backward pass, counted as two
solves (`solves`), so a fair comparison gives `GoalIMGEP` 1 + 2·`steps` times the
stored points (docs/discovery.md).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from ._validate import check_instance, check_range
from .behaviour import AbstractGoalStrategy, GoalIMGEP


class GoalGradient(AbstractGoalStrategy):
    """IMGEP whose mutated sources take `steps` steps of length `step_size` (a
    fraction of the box's unit cube) down the gradient of the distance between the
    goal embedding they reach and their goal; `imgep` samples goals and sources
    and draws the mutation. A step whose gradient is not finite leaves the point."""

    imgep: GoalIMGEP = eqx.field(default_factory=GoalIMGEP)
    steps: int = eqx.field(static=True, default=2)
    step_size: float = eqx.field(static=True, default=0.02)

    def __check_init__(self):
        check_instance("GoalGradient", "imgep", self.imgep, GoalIMGEP)
        check_range("GoalGradient", "steps", self.steps, ge=1, integer=True)
        check_range("GoalGradient", "step_size", self.step_size, gt=0.0, le=1.0)

    def random_draws(self, budget, batch):
        return self.imgep.random_draws(budget, batch)

    def solves(self):
        return 1.0 + 2.0 * self.steps

    def propose(self, key, system, store, batch):
        k_goal, k_mut, k_sim = jr.split(key, 3)
        goals, scale, source = self.imgep.targets(k_goal, store, batch)
        space = system.space
        unit = space.to_unit(space.mutate(k_mut, source, self.imgep.mutation))
        keys = jr.split(k_sim, batch)

        def distance(u, goal, k):
            reached = system.goal(system.recording(space.from_unit(u), k))
            return self.imgep.distance(reached, goal, scale)

        def step(u, _):
            grad = jax.vmap(jax.grad(distance))(u, goals, keys)
            norm = jnp.linalg.norm(grad, axis=-1, keepdims=True)
            ok = jnp.isfinite(norm) & (norm > 0)
            moved = jnp.clip(u - self.step_size * grad / jnp.where(ok, norm, 1.0), 0.0, 1.0)
            return jnp.where(ok, moved, u), None

        unit, _ = jax.lax.scan(step, unit, None, length=self.steps)
        return space.from_unit(unit)
