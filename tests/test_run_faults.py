"""Run descriptions that fail before any compute, and failures after training that keep
the trained run (the review of 2026-12-01: each test failed before its fix)."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import diffgrn
from diffgrn._runs import RunFolder, Unfinished, check_out

TINY = dict(tissue=diffgrn.Chain(3, "open"), dynamics=diffgrn.Dynamics(t_final=0.1, dt=0.05))


@pytest.fixture(scope="module")
def tiny():
    return diffgrn.Objective(**TINY, replicates=4)


def test_a_run_that_cannot_be_saved_fails_before_training(tiny, tmp_path, monkeypatch):
    def train(*args, **kwargs):
        raise AssertionError("trained before the description was checked")

    monkeypatch.setattr(sys.modules["diffgrn.run"], "train", train)
    method = diffgrn.Gradient(optax.sgd(1e-2), diffgrn.Pathwise(replicates=4))
    run = diffgrn.Run(tiny, diffgrn.MLPRegulator(key=jr.key(0)), method, out=tmp_path / "r")
    with pytest.raises(TypeError, match="no JSON config"):
        run.execute(progress=False)
    assert not (tmp_path / "r").exists()


def test_a_tanh_start_is_recorded_by_its_values(tiny):
    start = diffgrn.TanhRegulator(2.0, 5.0, 0.3)
    assert start.config() == {"type": "TanhRegulator", "a": 2.0, "b": 5.0, "c": 0.3}
    run = diffgrn.Run(tiny, start, diffgrn.MuPlusLambdaES(), iterations=2)
    again = diffgrn.config.from_config(json.loads(json.dumps(run.config())))
    assert [float(getattr(again.regulator, p)) for p in "abc"] == [2.0, 5.0, float(start.c)]


def test_overwrite_replaces_only_a_folder_diffgrn_wrote(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="holds files diffgrn did not write"):
        check_out(mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    (mine / "history.json").write_text("{}")  # an earlier run's folder: replaced
    check_out(mine, overwrite=True)


def test_a_failed_commit_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "run"
    target.mkdir()
    (target / "history.json").write_text("old")
    real, calls = os.replace, []

    def replace(a, b):
        calls.append(a)
        if len(calls) == 2:  # the new folder's rename into place
            raise OSError(28, "No space left on device")
        real(a, b)

    with RunFolder(target, overwrite=True) as folder:
        (folder.tmp / "history.json").write_text("new")
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError):
            folder.commit()
        monkeypatch.setattr(os, "replace", real)
    assert (target / "history.json").read_text() == "old"


def test_compare_refuses_to_replace_an_earlier_comparison(tiny, tmp_path):
    out = tmp_path / "C"
    out.mkdir()
    (out / "compare.json").write_text("{}")
    run = diffgrn.CompareRun(
        tiny, diffgrn.MLPRegulator(key=jr.key(0)), {"es": diffgrn.MuPlusLambdaES()}, out=out
    )
    with pytest.raises(ValueError, match="already holds a comparison"):
        run.execute(progress=False)


def test_compare_reassess_0_is_off(tiny, monkeypatch):
    seen = {}

    def compare(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["diffgrn.compare"], "compare", compare)
    run = diffgrn.CompareRun(
        tiny, diffgrn.MLPRegulator(key=jr.key(0)), {"es": diffgrn.MuPlusLambdaES()},
        target=0.5, reassess=0,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run._compare(on_run=None, progress=False)
    assert seen["reassess"] is None


@pytest.mark.parametrize("seeds", [2.0, True, [0, 2**40], [-1]])
def test_compare_seeds_checked(without_type_checks, tiny, seeds):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    with pytest.raises(ValueError, match="CompareRun.seeds"):
        diffgrn.CompareRun(tiny, reg, {"es": diffgrn.MuPlusLambdaES()}, seeds=seeds)


def test_runs_check_their_objective_and_seed_first(without_type_checks, tiny):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    with pytest.raises(ValueError, match="CompareRun.objective"):
        diffgrn.CompareRun(None, reg, {"es": diffgrn.MuPlusLambdaES()})
    with pytest.raises(ValueError, match="ExploreRun.objective"):
        diffgrn.ExploreRun(None, reg, {"r": diffgrn.RandomExploration()})
    with pytest.raises(ValueError, match="Run.seed"):
        diffgrn.Run(tiny, reg, diffgrn.MuPlusLambdaES(), seed=2**64)


def test_explore_checks_every_strategy_before_the_first_runs(tiny):
    strategies = {"r": diffgrn.RandomExploration(), "i": diffgrn.IMGEP(initial=50)}
    with pytest.raises(ValueError, match="IMGEP.initial"):
        diffgrn.ExploreRun(tiny, diffgrn.MLPRegulator(key=jr.key(0)), strategies, budget=4)


@pytest.mark.slow
def test_figures_that_fail_keep_the_trained_run(tiny, tmp_path, monkeypatch):
    def figures(*args, **kwargs):
        raise ValueError("a plotting bug")

    monkeypatch.setattr(sys.modules["diffgrn._runs"], "_figures", figures)
    out = tmp_path / "r"
    run = diffgrn.Run(tiny, diffgrn.TanhRegulator(), diffgrn.RandomSearch(4), iterations=2, out=out)
    with pytest.raises(Unfinished, match="drawing the figures failed"):
        run.execute(progress=False)
    assert json.loads((out / "history.json").read_text())["fresh_noise"] is not None
    assert diffgrn.load(out / "best").regulator is not None


@pytest.mark.slow
def test_an_exploration_that_fails_keeps_the_finished_libraries(tiny, tmp_path, monkeypatch):
    class Failing(diffgrn.RandomExploration):
        def random_draws(self, budget, batch):
            return batch  # then `propose`

        def propose(self, key, reached):
            raise ValueError("a strategy bug")

    strategies = {"random": diffgrn.RandomExploration(), "failing": Failing()}
    run = diffgrn.ExploreRun(
        tiny, diffgrn.MLPRegulator(key=jr.key(0)), strategies, budget=6, batch=3,
        out=tmp_path / "X",
    )  # fmt: skip
    with pytest.raises(Unfinished, match="explore failed .* during failing"):
        run.execute(progress=False, log=lambda line: None)
    assert len(diffgrn.load_library(tmp_path / "X" / "random")) == 6
    assert json.loads((tmp_path / "X" / "explore.json").read_text())["unfinished"] == ["failing"]


@pytest.mark.slow
def test_the_random_draws_recorded_are_those_drawn(tiny):
    lib = diffgrn.explore(
        tiny, diffgrn.MLPRegulator(key=jr.key(0)), diffgrn.IMGEP(initial=4),
        key=jr.key(0), budget=12, batch=3, progress=False,
    )  # fmt: skip
    assert lib.config["initial"] == 6  # two whole rounds of 3


def test_what_a_killed_run_left_does_not_block_its_folder(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    out = tmp_path / "C"
    out.mkdir()
    (out / ".es-seed0.lock").write_text(str(gone.pid))
    (out / f".es-seed0.tmp-{gone.pid}").mkdir()
    check_out(out, overwrite=False)  # only debris: as good as empty
    with RunFolder(out / "es-seed0") as folder:
        (folder.tmp / "history.json").write_text("{}")
        folder.commit()
    assert sorted(p.name for p in out.iterdir()) == ["es-seed0"]
    live = tmp_path / "D"
    (live / f".x.tmp-{os.getpid()}").mkdir(parents=True)  # a running process's: not debris
    with pytest.raises(ValueError, match="already holds files"):
        check_out(live, overwrite=False)


@pytest.mark.parametrize(
    "argv, unused",
    [
        ("train --method es --bandwidth 0.2", "--bandwidth"),  # ES reads hard fates only
        ("train --method cmaes --temperature 5", "--temperature"),
        ("train --method adam --estimator likelihood-ratio --bandwidth 0.3", "--bandwidth"),
        ("explore --temperature 5", "--temperature"),
        ("train --method hybrid --generations 5", "--generations"),  # hybrid: --switch
        ("train --cells 5 --size 9", "--cells and --size both set the chain's length"),
        ("train --method adam --bandwidth 0.2 --temperature 5", None),
        ("compare --methods es,adam --bandwidth 0.2", None),  # adam reads it
        ("train --method adam --estimator inverse-variance --bandwidth 0.3", None),
        ("train --quick --generations 25", None),  # --quick's own value: as good as not given
    ],
)
def test_options_that_change_nothing_the_run_reads_are_refused(argv, unused):
    from diffgrn import cli

    parser, sub = cli._parser()
    args = parser.parse_args(argv.split())
    if unused is None:
        cli.check_unused(args.command, args, sub.choices[args.command])
    else:
        message = unused if " " in unused else f"{unused} does not apply to this run"
        with pytest.raises(ValueError, match=f"^{message}"):
            cli.check_unused(args.command, args, sub.choices[args.command])


@pytest.mark.slow
def test_collect_keeps_a_compare_folders_description_and_target(tmp_path, capsys):
    from diffgrn.cli import main

    out = tmp_path / "C"
    small = ["--quick", "--methods", "random", "--generations", "2", "--replicates", "4",
             "--t-final", "1", "--dt", "0.1", "--no-progress"]  # fmt: skip
    assert main(["compare", *small, "--target", "0.3", "--out", str(out)]) == 0
    before = json.loads((out / "compare.json").read_text())
    assert main(["compare", "--collect", "--out", str(out)]) == 0
    after = json.loads((out / "compare.json").read_text())
    assert after["target"] == 0.3 and after["description"] == before["description"]
    assert after["table"] == before["table"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["compare", "--collect", "--out", str(out), "--lr", "0.1"])
    assert "trains nothing" in capsys.readouterr().err


def test_a_broken_class_file_is_a_config_error_naming_it(tmp_path):
    broken = tmp_path / "mine.py"
    broken.write_text("import diffgrn\ndef f(:\n")
    with pytest.raises(ValueError, match=f"from {broken}: SyntaxError"):
        diffgrn.config.from_config({"type": "__main__:Mine", "file": str(broken)})


# Ctrl-C at safe points (CI of stop 33: an interrupt landing mid-write ended the command
# with "cannot write: Bad file descriptor", and one landing in JAX's garbage-collector
# callback was dropped, so the run went on to its end).


def test_a_ctrl_c_during_a_write_is_delivered_once_the_folder_is_whole(tmp_path):
    from diffgrn.io import write_folder

    def write(tmp):
        (tmp / "meta.json").write_text(json.dumps({"format": "test"}))
        os.kill(os.getpid(), __import__("signal").SIGINT)  # Ctrl-C half-way
        (tmp / "data.txt").write_text("the rest")

    with pytest.raises(KeyboardInterrupt):
        write_folder(tmp_path / "f", write, "test", "test")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["data.txt", "meta.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary folder left


def test_a_ctrl_c_dropped_in_a_gc_callback_is_raised_again():
    script = """
import gc, time
from diffgrn._interrupt import keep_swallowed
keep_swallowed()
def callback(*args):
    gc.callbacks.remove(callback)
    raise KeyboardInterrupt  # as a Ctrl-C landing in JAX's _xla_gc_callback
gc.callbacks.append(callback)
gc.collect()
try:
    time.sleep(5)
except KeyboardInterrupt:
    print("raised again")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.stdout.strip() == "raised again", proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_a_ctrl_c_during_a_checkpoint_save_is_delivered_once_it_is_written(tmp_path, monkeypatch):
    import shutil
    import signal

    from diffgrn.train import Checkpoint, History, TrainState

    reg = diffgrn.TanhRegulator(2.0, 5.0, 0.3)
    ts = TrainState(jnp.ones(3), jr.key(0), History(), reg, reg, iteration=1)
    ckpt = Checkpoint(tmp_path / "c", 1, {"iterations": 5})
    ckpt.save(ts)
    rmtree = shutil.rmtree

    def interrupted_rmtree(*args, **kwargs):  # the old folder's removal, cut by a Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        rmtree(*args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(ts.replace(iteration=2, phase_iteration=2))
    assert json.loads((tmp_path / "c" / "checkpoint.json").read_text())["phase_iteration"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # the old one removed whole
