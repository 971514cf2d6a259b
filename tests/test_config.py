"""One config mechanism: every object round-trips through `config()`/`from_config`,
and a user's own classes load in a fresh process."""

import json
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffgrn

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    "obj",
    [
        diffgrn.Dynamics(noise=diffgrn.GridNoise(), constraint=diffgrn.SoftClip(30.0)),
        diffgrn.Dynamics(noise=diffgrn.VirtualTreeNoise(), constraint=diffgrn.Reflect()),
        diffgrn.Dynamics(sigma=0.0, noise=diffgrn.NoNoise(), constraint=diffgrn.Unconstrained()),
        diffgrn.Lattice(3, 4, "hex", "open"),
        diffgrn.Graph(4, [(0, 1), (1, 2), (2, 3)], pinned=[3]),
        diffgrn.ChainedReadout(diffgrn.StraightThroughReadout(), diffgrn.SoftReadout(5.0)),
        diffgrn.TargetPattern("1001001"),
        diffgrn.Mixture(diffgrn.Pathwise(replicates=8, backprop_steps=3), diffgrn.AntitheticES()),
        diffgrn.InverseVariance(diffgrn.Pathwise(), diffgrn.LikelihoodRatio()),
        diffgrn.Objective(max_stiffness=1.0, utility=diffgrn.TargetPattern("0101010")),
    ],
    ids=lambda o: type(o).__name__,
)
def test_objects_round_trip_through_json(obj):
    config = json.loads(json.dumps(obj.config()))
    back = diffgrn.from_config(config)
    assert type(back) is type(obj)
    assert back.config() == obj.config()
    assert type(obj).from_config(config).config() == obj.config()


def test_regulator_skeletons_rebuild_with_their_shapes():
    for reg in (
        diffgrn.MLPRegulator((4, 3), key=jr.key(0), genes=2, inputs="both"),
        diffgrn.TranscriptionalRegulator(3, key=jr.key(0)),
        diffgrn.TanhRegulator(2.0, 3.0, 0.1),
    ):
        back = diffgrn.from_config(reg.config(), diffgrn.AbstractRegulator)
        assert type(back) is type(reg) and back.genes == reg.genes
        assert [x.shape for x in leaves(back)] == [x.shape for x in leaves(reg)]


def leaves(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


def test_wrong_type_and_unknown_class_are_clear_errors():
    with pytest.raises(ValueError, match="is not a AbstractRegulator"):
        diffgrn.from_config(diffgrn.Chain(5).config(), diffgrn.AbstractRegulator)
    with pytest.raises(ValueError, match="unknown diffgrn type 'Nope'"):
        diffgrn.from_config({"type": "Nope"})
    with pytest.raises(ValueError, match="cannot find the class"):
        diffgrn.from_config({"type": "no_such_module_xyz:Thing"})
    with pytest.raises(TypeError, match="Descriptor.fn holds a function"):
        diffgrn.discovery.Descriptor(lambda f, s, p: 0.0, 0.0, 1.0).config()


def test_a_users_regulator_loads_in_a_fresh_process(tmp_path):
    # examples/custom_regulator.py's HillRepressor, imported as a module of the checkout.
    sys.path.insert(0, str(ROOT))
    try:
        from examples.custom_regulator import HillRepressor
    finally:
        sys.path.remove(str(ROOT))
    reg = HillRepressor(1.3, 0.4, 3.0)
    assert reg.config() == {"type": "examples.custom_regulator:HillRepressor"}
    diffgrn.save(tmp_path / "hill", reg)
    s = jnp.linspace(0.0, 1.0, 5)[:, None]
    want = reg(s, s).ravel().tolist()
    code = (
        "import sys, json, jax.numpy as jnp, diffgrn\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"reg = diffgrn.load({str(tmp_path / 'hill')!r}).regulator\n"
        "s = jnp.linspace(0.0, 1.0, 5)[:, None]\n"
        "print(type(reg).__name__, json.dumps(reg(s, s).ravel().tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    name, values = out.stdout.split(" ", 1)
    assert name == "HillRepressor"
    assert json.loads(values) == pytest.approx(want, abs=1e-7)


def test_a_scripts_regulator_loads_from_its_file_in_a_fresh_process(tmp_path):
    script = tmp_path / "my_script.py"
    script.write_text(
        "import sys, jax, jax.numpy as jnp, diffgrn\n"
        "class Ramp(diffgrn.AbstractRegulator):\n"
        "    slope: jax.Array\n"
        "    def __init__(self, slope=1.0):\n"
        "        self.slope = jnp.asarray(slope)\n"
        "    def __call__(self, s, sbar):\n"
        "        return self.slope * (0.5 - sbar)\n"
        "if __name__ == '__main__':\n"
        "    diffgrn.save(sys.argv[1], Ramp(2.5))\n"
    )
    folder = tmp_path / "saved"
    subprocess.run([sys.executable, str(script), str(folder)], check=True, cwd=tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["regulator"] == {"type": "__main__:Ramp", "file": str(script.resolve())}
    code = (
        "import jax.numpy as jnp, diffgrn\n"
        f"reg = diffgrn.load({str(folder)!r}).regulator\n"
        "print(type(reg).__name__, float(reg.slope), reg.config()['type'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Ramp", "2.5", "__main__:Ramp"]


def test_field_docs_read_attribute_docstrings_and_docstring_lists():
    """Field documentation comes from the string after a field or from a class
    docstring's ``- `name`: text`` list (inherited along the MRO); the command line's
    help is built from it, so every flag that sets a field has some."""
    import argparse

    import equinox as eqx

    from diffgrn.config import field_docs
    from diffgrn.options import OPTIONS, add

    class Base(eqx.Module):
        """A base.

        - `a`, `b`: listed
          over two lines.
        """

        a: int = 1
        b: int = 2

    class Child(Base):
        c: float = 0.5
        """The string after the field."""
        d: float = 1.0

    docs = field_docs(Child)
    assert docs == {"a": "listed over two lines.", "b": "listed over two lines.",
                    "c": "The string after the field."}  # fmt: skip
    assert "d" not in docs
    parser = argparse.ArgumentParser()
    add(parser, [o for o in OPTIONS if o.flag not in ("--method", "--mutation")])
    parser._actions = [a for a in parser._actions if a.dest != "help"]
    empty = [a.option_strings[0] for a in parser._actions if (a.help or " [").startswith(" [")]
    assert empty == []
    assert parser._option_string_actions["--parents"].help.startswith("es: parents")


def test_numeric_fields_get_numeric_flags():
    """A flag that sets a number field parses its value as a number, also where the
    field's default is None (so argparse cannot infer the type from it)."""
    import argparse
    import typing

    from diffgrn.config import find_class
    from diffgrn.options import OPTIONS, add

    parser = argparse.ArgumentParser()
    add(parser, [o for o in OPTIONS if o.flag not in ("--method", "--mutation")])
    checked = []
    for o in OPTIONS:
        cls, _, name = (o.fields.split() or [""])[0].partition(".")
        if not name or o.flag in ("--size", "--seeds"):  # text: N or RxC; a count or 0,3
            continue
        c = find_class({"type": cls})
        hints = typing.get_type_hints(c) | typing.get_type_hints(c.__init__)
        kinds = set(typing.get_args(hints[name]) or (hints[name],)) & {int, float}
        action = parser._option_string_actions.get(o.flag)
        if kinds and action is not None:
            assert action.type in kinds, (o.flag, action.type, hints[name])
            checked.append(o.flag)
    assert {"--max-stiffness", "--backprop-steps", "--lr", "--t-final"} <= set(checked)
