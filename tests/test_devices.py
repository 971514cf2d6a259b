"""Replicates split over several devices give the same numbers as one device.

Runs in a subprocess with four host (CPU) devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.random as jr, equinox as eqx, diffgrn
    assert len(jax.devices()) == 4, jax.devices()
    out = {}
    for name, kw in {
        "chain": dict(dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.05, noise=diffgrn.GridNoise()),
                      replicates=16),
        "hex": dict(tissue=diffgrn.Lattice(4, 6, "hex"), genes=2, fate_genes=(0, 1),
                    dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.05, noise=diffgrn.CounterNoise()),
                    replicates=12),
    }.items():
        for devices in (1, None):
            obj = diffgrn.Objective(devices=devices, **kw)
            reg = diffgrn.MLPRegulator(key=jr.key(0), genes=obj.genes, inputs="both",
                                       output_scale=1.0)
            compiled = eqx.filter_jit(obj.evaluate).lower(reg, jr.key(1)).compile()
            h, s = compiled(reg, jr.key(1))
            g = eqx.filter_grad(lambda r: obj.soft(r, jr.key(2)).value)(reg)
            es = diffgrn.train(obj, reg, "es", key=jr.key(3), iterations=2, progress=False,
                               select_top=1)
            hlo = compiled.compiled.as_text()  # the jax.stages.Compiled inside
            out[f"{name}/{devices}"] = dict(
                hard=float(h.value), soft=float(s.value),
                grad=float(diffgrn.diagnostics.tree_norm(g)),
                es=es.history.hard_utility,
                sharded=f"f32[{obj.replicates // 4 if name == 'chain' else 3}," in hlo)
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_four_devices_give_the_same_utilities_as_one():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("chain", "hex"):
        one, many = res[f"{name}/1"], res[f"{name}/None"]
        assert many["sharded"] and not one["sharded"]  # the solve really is split
        for k in ("hard", "soft"):
            assert abs(one[k] - many[k]) <= 1e-6, (name, k, one[k], many[k])
        assert many["grad"] == pytest.approx(one["grad"], rel=1e-5)
        assert many["es"] == pytest.approx(one["es"], abs=1e-6)
