"""Fault injection (issue 21): every value that reaches a solve is checked when its
object is built, every file diffgrn writes is written whole and never over something
it did not write, every file it reads is checked naming the file and the field, every
interrupt keeps what finished, and no broken or interrupted run enters a table
unflagged. The interrupt and collect cases run the `diffgrn` command in subprocesses."""

import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

import diffgrn
from diffgrn.cli import main
from diffgrn.discovery import Descriptor, RandomExploration, explore, load_library
from diffgrn.train import CHECKPOINT_FORMAT, Checkpoint

# The subprocesses' preexec_fn only sets signal handlers and limits before exec.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--quick", "--t-final", "1", "--dt", "0.1", "--replicates", "4", "--no-progress"]
POP = ["--population", "8"]


def cli(*args, cwd, preexec_fn=None, timeout=600):
    """`diffgrn ARGS` in a subprocess (this checkout's package): the finished process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "diffgrn.cli", *map(str, args)]
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        preexec_fn=preexec_fn,
    )  # fmt: skip


def _default_sigint():
    """Ctrl-C raises KeyboardInterrupt in the child even where this process was started
    with SIGINT ignored (a background job), which Python would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(args, cwd, ready, timeout=300):
    """Start `diffgrn ARGS`, send SIGINT once `ready(its output so far)` holds, wait:
    (exit status, output: stdout and stderr together)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "diffgrn.cli", *map(str, args)]
    log = Path(cwd) / f"stderr-{time.monotonic_ns()}.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=err, stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )  # fmt: skip
        start = time.monotonic()
        try:
            while not ready(log.read_text()):
                assert proc.poll() is None, f"finished before the interrupt: {log.read_text()}"
                assert time.monotonic() - start < timeout, "never ready to interrupt"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
    return rc, log.read_text()


def error_of(argv, capsys) -> str:
    """The usage error `diffgrn ARGV` exits with (status 2), before any compute."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    return capsys.readouterr().err


# Values reaching a solve: checked at construction, naming the field (item 10).


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: diffgrn.Dynamics(sigma="0.1"), "Dynamics.sigma"),
        (lambda: diffgrn.Dynamics(sigma=("0.1", 0.2)), "Dynamics.sigma"),
        (lambda: diffgrn.Dynamics(t_final=1e9), "1e+11 steps"),
        (lambda: diffgrn.Chain(n_cells="7"), "Chain.n_cells"),
        (lambda: diffgrn.Objective(replicates=float("nan")), "Objective.replicates"),
    ],
)
def test_bad_values_are_refused_when_built(without_type_checks, make, field):
    with pytest.raises(ValueError, match=field.replace("+", r"\+")):
        make()


def test_train_iterations_nan_names_the_field(without_type_checks, small_objective):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    with pytest.raises(ValueError, match="train.iterations must be an integer >= 1; got nan"):
        diffgrn.train(small_objective, reg, "es", key=jr.key(0), iterations=math.nan)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(strategy=dict), "Evosax.strategy must be an evosax strategy"),
        (dict(strategy="SNES", std_init="abc"), r"Evosax\('SNES'\).std_init must be a finite"),
        (dict(strategy="SNES", lr_std_init=-1.0), r"lr_std_init must be a finite number > 0"),
        (dict(strategy="CMA_ES", std_min=1.0, std_max=0.5), "std_min must be <= std_max"),
    ],
)
def test_evosax_strategy_and_parameter_values_checked(kwargs, message):
    pytest.importorskip("evosax")
    with pytest.raises(ValueError, match=message):
        diffgrn.Evosax(**kwargs)
    diffgrn.Evosax("SNES", lr_std_init=0.1)  # a good value still builds


def test_descriptors_checked_before_any_simulation(small_objective):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    per_cell = Descriptor(lambda f, s, p: f[..., 0].mean(0), 0.0, 1.0, label="per-cell")
    with pytest.raises(ValueError, match="'per-cell' .*must return one number"):
        explore(small_objective, reg, budget=4, batch=4, key=jr.key(0), descriptors=[per_cell])
    lonely = small_objective.replace(tissue=diffgrn.Graph(3, []))
    for name in ("boundaries", "like"):
        with pytest.raises(ValueError, match="reads neighbour pairs, but this 3-cell tissue"):
            explore(lonely, reg, budget=4, batch=4, key=jr.key(0), descriptors=name)


# A model changed silently (item 6).


def test_graph_repeated_edges_and_all_pinned_refused():
    with pytest.raises(ValueError, match="joins cell 0 to cell 1 more than once"):
        diffgrn.Graph(3, [(0, 1), (0, 1), (1, 2)])
    with pytest.raises(ValueError, match="one undirected edge"):
        diffgrn.Graph(3, [(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="Graph.pinned holds all 3 cells"):
        diffgrn.Graph(3, [(0, 1), (1, 2)], pinned=[0, 1, 2])
    g = diffgrn.Graph(3, [(0, 1), (1, 2)])  # cell 1: the equal-weight mean of 0 and 2
    assert sorted(np.asarray(g.weights[1]).tolist()) == [0.5, 0.5]
    assert diffgrn.Graph(3, [(0, 1), (1, 0)], directed=True).n_cells == 3


@pytest.mark.parametrize(
    "rows, cols, geometry", [(2, 5, "square"), (5, 2, "square"), (4, 2, "hex")]
)
def test_a_torus_two_cells_wide_is_refused(rows, cols, geometry):
    with pytest.raises(ValueError, match="must be >= 3 for a periodic sheet"):
        diffgrn.Lattice(rows, cols, geometry, "periodic")
    lat = diffgrn.Lattice(3, 3, "square", "periodic")  # 4 distinct neighbours, 1/4 each
    assert np.allclose(np.asarray(lat.weights), 0.25)
    assert all(len(set(row)) == 4 for row in np.asarray(lat.neighbours).tolist())


# Libraries: written whole, never over another folder; read checking every field
# (items 3 and 7).


@pytest.fixture(scope="module")
def library():
    obj = diffgrn.Objective(
        diffgrn.Chain(5), diffgrn.Dynamics(t_final=1.0, dt=0.1), replicates=4
    )  # fmt: skip
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    return explore(obj, reg, RandomExploration(), budget=4, batch=4, key=jr.key(0))


def test_library_save_never_over_a_saved_regulator(library, tmp_path):
    reg = diffgrn.MLPRegulator(key=jr.key(3))
    diffgrn.save(tmp_path / "reg", reg)
    with pytest.raises(ValueError, match="holds a diffgrn-regulator-v1 folder"):
        library.save(tmp_path / "reg")
    assert eqx.tree_equal(diffgrn.load(tmp_path / "reg").regulator, reg)  # still loads
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    for save in (library.save, lambda p: diffgrn.save(p, reg)):
        with pytest.raises(ValueError, match="holds files it did not write"):
            save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="holds a diffgrn-library-v1 folder"):
        diffgrn.save(library.save(tmp_path / "lib"), reg)
    library.save(tmp_path / "lib")  # replacing its own earlier save is fine


def test_library_save_is_whole(library, tmp_path, monkeypatch):
    path = library.save(tmp_path / "lib")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    other = dataclasses.replace(library, params=library.params + 1.0)

    def full_disk(*args, **kwargs):  # fails after the leaves are written, before meta.json
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sys.modules["diffgrn.io"], "dumps", full_disk)
    with pytest.raises(OSError, match="No space"):
        other.save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # no temporary left
    monkeypatch.undo()
    assert load_library(path).params.tolist() == library.params.tolist()


def test_library_load_checks_every_field(library, tmp_path):
    path = library.save(tmp_path / "lib")
    meta_file = path / "meta.json"
    meta = json.loads(meta_file.read_text())
    edits = [
        ({**meta, "bins": 0}, "'bins' must be an integer >= 1; got 0"),
        ({**meta, "bounds": [[0, 0]] * 3}, "'bounds' must be 3 .* low < high"),
        ({**meta, "rows": 5}, "'shapes' must be 5 rows"),
        ({**meta, "names": ["a"]}, "'names' must be 3 descriptor names"),
        ({**meta, "coverage": [[1]]}, "'coverage' must be"),
        ({k: v for k, v in meta.items() if k != "config"}, "'config' must be a mapping"),
    ]
    for edited, message in edits:
        meta_file.write_text(json.dumps(edited))
        with pytest.raises(ValueError, match=f"{meta_file}: {message}"):
            load_library(path)
    for text in (json.dumps(meta)[:50], "[1, 2]"):
        meta_file.write_text(text)
        with pytest.raises(ValueError, match=f"load_library: {meta_file} is not"):
            load_library(path)
    meta_file.write_text(json.dumps(meta))
    other = diffgrn.MLPRegulator((3,), key=jr.key(0))
    with pytest.raises(ValueError, match="10 parameters.*97 parameters"):
        load_library(path, like=other)
    assert load_library(path).bins == library.bins


def test_checkpoint_json_checked_naming_the_file(without_type_checks, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "state.eqx").write_bytes(b"")
    meta = folder / "checkpoint.json"
    for text, message in [
        ('{"format": "diffgrn-checkpoint-v2", "pha', "is not valid JSON"),
        ("[]", "is not a diffgrn checkpoint"),
    ]:
        meta.write_text(text)
        with pytest.raises(ValueError, match=f"train.resume: {meta} {message}"):
            Checkpoint(folder, None, {}).load(None, None, jr.key(0))


def test_rerun_names_a_truncated_record(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for text, message in [('{"run": {"ty', "is not valid JSON"), ("[1]", "is not a run record")]:
        (tmp_path / "run" / "history.json").write_text(text)
        err = error_of(["rerun", tmp_path / "run", "--out", tmp_path / "again"], capsys)
        assert f"rerun: {tmp_path / 'run' / 'history.json'} {message}" in err


# Every compiled evaluation sized before it runs, and split into chunks that fit
# (item 11).


@pytest.fixture
def grid_objective():
    dyn = diffgrn.Dynamics(t_final=1.0, dt=0.1, noise=diffgrn.GridNoise())
    return diffgrn.Objective(diffgrn.Chain(5), dyn, replicates=8)


def test_assess_runs_in_chunks_under_a_memory_limit(grid_objective, monkeypatch):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    whole = diffgrn.assess(grid_objective, reg, key=jr.key(1), repeats=6, refine=None)
    each = grid_objective.solve_bytes()
    monkeypatch.setenv("DIFFGRN_MEMORY_LIMIT", str(int(4.5 * each)))  # room for 2 at once
    assert grid_objective.batch_size(6, "assess") == 2
    chunked = diffgrn.assess(grid_objective, reg, key=jr.key(1), repeats=6, refine=None)
    np.testing.assert_allclose(chunked["values"], whole["values"], rtol=1e-6)
    monkeypatch.setenv("DIFFGRN_MEMORY_LIMIT", str(each // 2))  # not even one solve
    with pytest.raises(ValueError, match="assess: one evaluation needs about"):
        diffgrn.assess(grid_objective, reg, key=jr.key(1), repeats=6, refine=None)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_population_and_explore_rounds_run_in_chunks(grid_objective, monkeypatch):
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    es = diffgrn.MuPlusLambdaES(population=8, parents=2)
    kw = dict(key=jr.key(2), iterations=2, progress=False, select_top=1)
    whole = diffgrn.train(grid_objective, reg, es, **kw).history.hard_utility
    lib = explore(grid_objective, reg, budget=8, batch=8, key=jr.key(0), progress=False)
    monkeypatch.setenv("DIFFGRN_MEMORY_LIMIT", str(int(6.5 * grid_objective.solve_bytes())))
    assert grid_objective.batch_size(8, "x") == 2
    chunked = diffgrn.train(grid_objective, reg, es, **kw).history.hard_utility
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    again = explore(grid_objective, reg, budget=8, batch=8, key=jr.key(0), progress=False)
    np.testing.assert_allclose(again.descriptors, lib.descriptors, rtol=1e-6)


@pytest.mark.parametrize(
    "fault, status, message",
    [
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 25606459536 bytes"), 1,
         "assessment failed (RuntimeError: RESOURCE_EXHAUSTED"),
        (KeyboardInterrupt(), 130, "assessment interrupted"),
    ],
)  # fmt: skip
def test_trained_result_saved_before_an_assessment_that_fails(
    fault, status, message, tmp_path, monkeypatch, capsys
):
    def assess(*args, **kwargs):
        raise fault

    monkeypatch.setattr(sys.modules["diffgrn.train"], "assess", assess)  # what write_run calls
    out = tmp_path / "run"
    argv = ["train", *TINY, *POP, "--parents", "2", "--generations", "2", "--out", out]
    assert main([str(a) for a in argv]) == status
    err = capsys.readouterr().err
    assert message in err and f"saved in {out}" in err
    saved = json.loads((out / "history.json").read_text())
    assert saved["fresh_noise"] is None and message.split(" (")[0] in saved["error"]
    assert len(saved["history"]["iteration"]) == 2
    assert diffgrn.load(out / "best").regulator is not None
    assert diffgrn.load_run(out).iterations == 2


@pytest.mark.parametrize(
    "fault, status, message",
    [
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 25606459536 bytes"), 1,
         "diffgrn: out of device memory (RESOURCE_EXHAUSTED"),
        (KeyboardInterrupt(), 130, "compare interrupted: the finished runs are in"),
    ],
)  # fmt: skip
def test_compare_keeps_a_trained_run_whose_assessment_fails(
    fault, status, message, tmp_path, monkeypatch, capsys
):
    def assess(*args, **kwargs):
        raise fault

    monkeypatch.setattr(sys.modules["diffgrn.compare"], "assess", assess)
    out = tmp_path / "C"
    argv = ["compare", *TINY, *POP, "--parents", "2", "--generations", "2", "--methods", "es"]
    assert main([*map(str, argv), "--reassess", "0", "--out", str(out)]) == status
    err = capsys.readouterr().err
    assert message in err and f"es seed 0: trained, saved in {out / 'es-seed0'}" in err
    saved = json.loads((out / "es-seed0" / "history.json").read_text())
    assert saved["fresh_noise"] is None and "assessment" in saved["error"]
    assert len(saved["history"]["iteration"]) == 2
    assert diffgrn.load(out / "es-seed0" / "best").regulator is not None


def test_a_gradient_estimate_that_cannot_fit_is_refused_before_compiling(
    small_objective, monkeypatch
):
    from diffgrn.estimators import Pathwise

    reg = diffgrn.MLPRegulator(key=jr.key(0))
    need = Pathwise(8).memory_bytes(small_objective, reg)
    assert need > small_objective.solve_bytes(8)  # reverse mode stores the steps
    monkeypatch.setenv("DIFFGRN_MEMORY_LIMIT", str(need - 1))
    method = diffgrn.Gradient(estimator=Pathwise(8))
    with pytest.raises(ValueError, match="Gradient: one Pathwise estimate needs about"):
        diffgrn.train(small_objective, reg, method, key=jr.key(0), iterations=2, progress=False)


def test_a_population_of_learners_is_sized_as_all_its_estimates(small_objective, monkeypatch):
    from diffgrn.estimators import Pathwise

    reg = diffgrn.MLPRegulator(key=jr.key(0))
    need = Pathwise(8).memory_bytes(small_objective, reg)
    monkeypatch.setenv("DIFFGRN_MEMORY_LIMIT", str(3 * need))  # one fits, four at once do not
    method = diffgrn.GradientPopulation(diffgrn.Gradient(estimator=Pathwise(8)), learners=4)
    with pytest.raises(
        ValueError, match="Gradient: 4 Pathwise estimates at once.*train fewer learners"
    ):
        diffgrn.train(small_objective, reg, method, key=jr.key(0), iterations=2, progress=False)


# Options used or refused; repeats refused as repeats (items 5 and 10).


def test_options_a_run_does_not_use_are_refused(tmp_path, capsys):
    err = error_of(
        ["train", *TINY, "--pattern-score", "exact-hits", "--out", tmp_path / "a"], capsys
    )
    assert "--pattern-score does not apply to this run (es, chain, mlp): drop it" in err
    (tmp_path / "b.checkpoint").mkdir()
    (tmp_path / "b.checkpoint" / "run.json").write_text("{}")
    err = error_of(
        ["train", "--resume", tmp_path / "b", "--generations", "10", "--seed", "3"], capsys
    )
    assert "take the whole run from its file: drop --seed, --generations" in err
    err = error_of(["train", *TINY, "--method", "hybrid", "--switch", "30"], capsys)
    assert "--steps must be > --switch = 30 for a hybrid; got 25" in err  # not train.iterations
    err = error_of(["train", *TINY, "--cells", "1", "--out", tmp_path / "c"], capsys)
    assert "is 0 on one cell whatever the regulator: use at least 2 cells (--cells" in err
    assert not (tmp_path / "c").exists()
    for flags, message in [  # what a newcomer typed, answered by the flag typed
        (["--method", "adam", "--estimator", "antithetic-es", "--bandwidth-to", "0.1"],
         "--bandwidth-to does not apply to this run (adam, chain, mlp): drop it"),
        (["--cells", "5", "--size", "7"], "--cells and --size both set the chain's length"),
        (["--generations", "0"], "--generations must be an integer >= 1; got 0"),
        (["--method", "adam", "--steps", "-3"], "--steps must be an integer >= 1; got -3"),
        (["--size", "5x5"], "one number of cells (a lattice: --tissue square or hex)"),
    ]:  # fmt: skip
        assert message in error_of(["train", *TINY, *flags, "--out", tmp_path / "d"], capsys)
    err = error_of(["compare", *TINY, "--methods", "es,foo", "--out", tmp_path / "d"], capsys)
    assert "--methods: unknown method 'foo'" in err
    assert not (tmp_path / "d").exists()
    # one cell stays a tissue: a utility that scores it (test_behaviour simulates one)
    assert diffgrn.Objective(tissue=diffgrn.Chain(1), utility=diffgrn.NoUtility()).n_cells == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--methods", "es", "--seeds", "0,0"], "--seeds lists the seed 0 twice"),
        (["--methods", "es,es"], "--methods lists the method 'es' twice"),
    ],
)
def test_compare_repeats_refused_as_repeats(flags, message, tmp_path, capsys):
    err = error_of(["compare", *TINY, *POP, *flags, "--out", tmp_path / "c"], capsys)
    assert message in err and "lock" not in err
    assert not (tmp_path / "c").exists()


# compare --collect: one bad folder is named and left out; interrupted runs are not
# results (items 2 and 8).


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished run folder (as compare writes them), trained in this process."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*map(str, ["train", *TINY, *POP, "--parents", "2", "--generations", "2"]),
                 "--out", str(out)]) == 0  # fmt: skip
    return out


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_collect_names_bad_folders_and_tabulates_the_rest(finished_run, tmp_path):
    out = tmp_path / "C"
    for name in ("es-seed0", "es-seed1", "es-seedold", "es-seed2", "es-seed3", "es-seed4"):
        shutil.copytree(finished_run, out / name)
    good = (out / "es-seed0" / "history.json").read_text()
    (out / "es-seed2" / "history.json").write_text(good[:300])
    (out / "es-seed3" / "history.json").write_text(json.dumps({"config": {}}))
    interrupted = json.loads(good) | {"error": "interrupted at iteration 0; best kept"}
    (out / "es-seed4" / "history.json").write_text(json.dumps(interrupted))
    proc = cli("compare", "--collect", *TINY, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = (out / "compare.md").read_text()
    assert "| es | 2 |" in table  # seeds 0 and 1 only
    for name, why in [
        ("es-seedold", "not a METHOD-seedK folder"),
        ("es-seed2", "history.json is not valid JSON (truncated?)"),
        ("es-seed3", "history.json lacks 'history'"),
        ("es-seed4", "interrupted, not a finished run"),
    ]:
        assert f"- {name}: {why}" in table
        assert f"not tabulated: {name}: {why}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_tabulate_is_collect_through_the_api(finished_run, tmp_path):
    out, other = tmp_path / "C", tmp_path / "D"
    for name in ("es-seed0", "es-seed1", "es-seedold"):
        shutil.copytree(finished_run, out / name)
    shutil.copytree(finished_run, other / "es-seed0")
    run = diffgrn.load_run(finished_run)
    compare = diffgrn.CompareRun(run.objective, run.regulator, {"es": run.method}, out=out)
    lines = []
    table = compare.tabulate({"again": other}, log=lines.append)
    assert "| es | 2 |" in table and "| again | 1 |" in table
    assert table + "\n" == (out / "compare.md").read_text()
    assert json.loads((out / "compare.json").read_text())["target"] is None
    why = "not a METHOD-seedK folder (K a number)"
    assert lines == [f"compare --collect: not tabulated: es-seedold: {why}"]
    # a compare's own folder keeps its description, target and baseline (not the default es)
    for name in ("random-seed0", "random-seed1"):
        shutil.copytree(finished_run, out / name)
    methods = {"es": run.method, "random": diffgrn.RandomSearch()}
    earlier = compare.replace(methods=methods, seeds=2, target=0.5, baseline="random")
    (out / "compare.json").write_text(json.dumps({"description": earlier.config()}))
    compare.tabulate(log=lines.append)
    saved = json.loads((out / "compare.json").read_text())
    assert saved["description"] == json.loads(json.dumps(earlier.config()))
    assert saved["target"] == 0.5 and [r["baseline"] for r in saved["speedups"]] == ["random"]
    # a kept baseline with no finished runs left is dropped, saying so
    for name in ("random-seed0", "random-seed1"):
        shutil.rmtree(out / name)
    compare.tabulate(log=lines.append)
    assert (
        lines[-1] == "compare --collect: not kept: the baseline 'random' (no finished runs of it)"
    )
    assert json.loads((out / "compare.json").read_text())["speedups"] == []


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_collect_refuses_merging_the_out_folder_itself(finished_run, tmp_path, capsys):
    shutil.copytree(finished_run, tmp_path / "C" / "es-seed0")
    argv = ["compare", "--collect", *TINY, "--out", tmp_path / "C"]
    err = error_of([*argv, "--merge", f"X={tmp_path / 'C'}"], capsys)
    assert "that folder is the --out folder already tabulated" in err


# Through the command, with real interrupts and a full disk (slow: several processes
# that compile and train).


@pytest.mark.slow
def test_interrupted_default_folder_resumes(tmp_path):
    args = ["train", *TINY, *POP, "--generations", "600", "--checkpoint-every", "1"]
    ckpt = tmp_path / "runs" / "es-open-seed0.checkpoint" / "checkpoint.json"
    rc, err = interrupt_when(args, tmp_path, lambda _: ckpt.is_file())
    assert rc == 130, err
    first = json.loads((tmp_path / "runs" / "es-open-seed0" / "history.json").read_text())
    assert first["error"].startswith("interrupted")
    done = len(first["history"]["iteration"])
    assert 0 < done < 600
    resume = ["train", "--resume", "runs/es-open-seed0", "--checkpoint-every", "1000"]
    proc = cli(*resume, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads((tmp_path / "runs" / "es-open-seed0" / "history.json").read_text())
    assert resumed["error"] is None and len(resumed["history"]["iteration"]) == 600
    assert (
        resumed["history"]["hard_utility"][: done - 1]
        == first["history"]["hard_utility"][: done - 1]
    )


@pytest.mark.slow
def test_interrupted_compare_run_is_not_tabulated(tmp_path):
    args = ["compare", *TINY, *POP, "--methods", "es,cmaes", "--generations", "3000"]
    args += ["--reassess", "0", "--out", tmp_path / "C"]
    seen = []

    def cmaes_started(out):  # es finished; 2 s on, cmaes compiles or trains
        seen.extend([time.monotonic()] if "es seed 0:" in out and not seen else [])
        return bool(seen) and time.monotonic() - seen[0] > 2

    rc, err = interrupt_when(args, tmp_path, cmaes_started)
    assert rc == 130 and "tabulate them with --collect" in err, err
    assert (tmp_path / "C" / "es-seed0" / "history.json").is_file()
    proc = cli("compare", "--collect", *TINY, "--out", tmp_path / "C", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "C" / "compare.md").read_text()
    assert "| es | 1 |" in table and "| cmaes |" not in table
    assert "- cmaes-seed0: interrupted, not a finished run" in table
    assert "not tabulated: cmaes-seed0: interrupted" in proc.stderr


@pytest.mark.slow
def test_interrupted_explore_keeps_the_finished_library(tmp_path):
    args = ["explore", *TINY, "--budget", "20000", "--batch", "50", "--out", tmp_path / "X"]
    rc, err = interrupt_when(args, tmp_path, lambda e: "explore: imgep done" in e, timeout=580)
    assert rc == 130, err
    assert "kept the finished imgep library" in err
    lib = load_library(tmp_path / "X" / "imgep")
    assert len(lib) == 20000 and lib.coverage[-1][0] == 20000
    summary = json.loads((tmp_path / "X" / "explore.json").read_text())
    assert summary["unfinished"] == ["random"] and list(summary["filled"]) == ["imgep"]
    assert not (tmp_path / "X" / "random").exists()


def _file_size_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.slow
def test_disk_full_during_overwrite_keeps_the_old_run(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    args = ["train", *TINY, *POP, "--parents", "2", "--generations", "2", "--out", out]
    proc = cli(*args, "--overwrite", cwd=tmp_path, preexec_fn=_file_size_limit)
    assert proc.returncode == 1, proc.stderr
    assert "diffgrn: cannot write" in proc.stderr and "Traceback" not in proc.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("stderr")) == ["run"]


# Confirmed faults of the review (brief faults-a): each checked before any compute,
# naming the argument or the file.


@pytest.fixture
def no_compute(monkeypatch):
    """`train` fails loudly if it gets as far as building its compiled steps."""
    import importlib

    def boom(*args, **kwargs):
        raise AssertionError("train built its trainer: the check came after compute")

    module = importlib.import_module("diffgrn.train")
    monkeypatch.setattr(module, "build_trainer", boom)
    monkeypatch.setattr(module, "_hard_many", boom)  # assess's evaluations


def test_train_checkpoint_never_replaces_a_folder_it_did_not_write(
    without_type_checks, small_objective, mlp, tmp_path, no_compute
):
    mine = tmp_path / "myresults"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    afile = tmp_path / "afile"
    afile.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoint.json").write_text('{"format": "my-own-format"}')
    kw = dict(key=jr.key(0), iterations=1, progress=False, checkpoint_every=1)
    for folder, resume, message in [
        (mine, False, r"holds files that are not a diffgrn checkpoint \(notes.txt\)"),
        (mine, True, r"holds files that are not a diffgrn checkpoint \(notes.txt\)"),
        (afile, False, "is an existing file, not a folder"),
        (afile, True, "is an existing file, not a folder"),
        (other, False, "is not a diffgrn checkpoint"),
    ]:
        with pytest.raises(ValueError, match=f"train.checkpoint: {folder} {message}"):
            diffgrn.train(small_objective, mlp, "random", checkpoint=folder, resume=resume, **kw)
    assert (mine / "notes.txt").read_text() == "x" and afile.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "myresults", "other"]


def test_checkpoint_folder_a_save_may_replace(tmp_path):

    new, started, saved = tmp_path / "new", tmp_path / "started", tmp_path / "saved"
    started.mkdir()
    (started / "run.json").write_text("{}")  # what Run.execute writes before training
    saved.mkdir()
    (saved / "state.eqx").write_bytes(b"")
    (saved / "checkpoint.json").write_text(json.dumps(dict(format=CHECKPOINT_FORMAT)))
    for folder in (new, started, saved):
        Checkpoint(folder, 1, {}).check_folder(resume=False)


def _checkpoint_meta(history: dict) -> dict:
    """A checkpoint.json's fields, every one well-formed."""
    return dict(
        format=CHECKPOINT_FORMAT, phase=0, phase_iteration=len(history["iteration"]),
        history=history, best_utility=0.1, best_iteration=0, pool=[], wall_time=0.0,
        replicate_steps=1, compile_time=0.0, config=dict(iterations=2), sha256="",
    )  # fmt: skip


def _history(n: int) -> dict:
    h = diffgrn.History()
    for i in range(n):
        row = dict(iteration=i, hard_utility=0.1, hard_s_pat=0.1, hard_s_rep=0.0)
        h.append(dict(row, soft_utility=0.0, grad_norm=0.0, wall_time=0.1, replicate_steps=i))
    return h.to_dict()


def test_checkpoint_without_config_or_with_too_long_a_history_names_the_file(
    without_type_checks, tmp_path
):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "state.eqx").write_bytes(b"")
    meta_file = folder / "checkpoint.json"
    no_config = {k: v for k, v in _checkpoint_meta(_history(1)).items() if k != "config"}
    for meta, message in [
        (no_config, r"'config' must be the run's config \(a mapping\); got '\(missing\)'"),
        (dict(_checkpoint_meta(_history(1)), config=[1]), "'config' must be the run's config"),
        (_checkpoint_meta(_history(3)), "its history holds 3 iterations, more than the run's 2"),
        (_checkpoint_meta(dict(_history(1), wall_time=3)), "'history' is malformed"),
    ]:
        meta_file.write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=f"train.resume: {meta_file}: {message}"):
            Checkpoint(folder, None, dict(iterations=2)).load(None, None, jr.key(0))


def test_load_refuses_a_malformed_record_naming_the_file(without_type_checks, tmp_path):
    reg = diffgrn.MLPRegulator((3,), key=jr.key(0))
    good = tmp_path / "good"
    diffgrn.save(good, reg, {"a": 1}, diffgrn.History.from_dict(_history(2)))
    meta = json.loads((good / "meta.json").read_text())
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    meta_file = broken / "meta.json"
    history = meta["history"]
    no_wall_time = {k: v for k, v in history.items() if k != "wall_time"}
    for change, message in [
        (dict(history=no_wall_time), r"'history' is malformed \(history is missing fields"),
        (dict(history=dict(history, wall_time=3)), "'history' .* 'wall_time' must be a list"),
        (dict(history=dict(history, checks=[1])), "'history' .* 'checks' must be a list"),
        (dict(history=dict(history, iteration=[0])), "'history' .* differ in length"),
        (dict(history=dict(history, direction=0)), "'history' .* direction must be 1 or -1"),
        (dict(history=[1, 2]), "'history' is malformed .*must be a mapping"),
        (dict(config=[1]), "'config' must be a mapping"),
        (dict(shapes=None), "'shapes' must be the list"),
    ]:
        meta_file.write_text(json.dumps(dict(meta, **change)))
        with pytest.raises(ValueError, match=f"diffgrn.load: {meta_file}: {message}"):
            diffgrn.load(broken)
    meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k != "shapes"}))
    with pytest.raises(ValueError, match=rf"{meta_file}: 'shapes' .*got \(missing\)"):
        diffgrn.load(broken)
    assert diffgrn.load(good).history.wall_time == [0.1, 0.1]


def test_misused_arguments_refused_before_any_compute(
    without_type_checks, small_objective, mlp, tmp_path, no_compute
):
    train = lambda **kw: diffgrn.train(small_objective, mlp, "random", iterations=1, **kw)
    assess = diffgrn.assess
    for call, message in [
        (lambda: train(key=0), r"train.key must be a JAX PRNG key .*; got 0$"),
        (lambda: train(key=jr.split(jr.key(0))), r"train.key .*; got an array key<fry>\[2\]"),
        (lambda: train(key=jr.key(0), callback=3), "train.callback must be a function"),
        (lambda: assess(small_objective, mlp, key=None), "assess.key must be a JAX PRNG key"),
        (lambda: assess(None, mlp, key=jr.key(0)), "assess.objective must be a diffgrn.Objective"),
        (lambda: assess(small_objective, None, key=jr.key(0)), "assess.regulator must be a"),
        (lambda: assess(small_objective, mlp, key=jr.key(0), repeats=1),
         "assess.repeats must be an integer >= 2; got 1"),
        (lambda: diffgrn.save(tmp_path / "s", None), "diffgrn.save.regulator must be a diffgrn"),
        (lambda: diffgrn.save(tmp_path / "s", mlp, [1]), "diffgrn.save.config must be a mapping"),
        (lambda: diffgrn.load(tmp_path / "s", expect=3), "diffgrn.load.expect must be a regulator"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            call()
    assert not (tmp_path / "s").exists()


def test_compare_checks_every_method_setting_before_the_first_trains(
    without_type_checks, small_objective, no_compute
):
    two = {"es": "es", "random": "random"}
    hybrid = diffgrn.Hybrid(diffgrn.CMAES(population=6), diffgrn.Gradient(), switch=2)
    for kwargs, message in [
        (dict(iterations={"es": 1, "random": 0}),
         r"compare.iterations\['random'\] must be an integer >= 1; got 0"),
        (dict(iterations={"ES": 0}),
         "compare.iterations names 'ES', not a compared method; expected .* 'es', 'random'"),
        (dict(iterations=1.5), "compare.iterations must be an integer >= 1; got 1.5"),
        (dict(methods={"h": hybrid}, iterations={"h": 2}),
         r"compare.iterations\['h'\] \(h\): train.iterations must be > Hybrid.switch"),
        (dict(assess_repeats=0), "compare.assess_repeats must be an integer >= 2; got 0"),
        (dict(assess_repeats=1), "compare.assess_repeats must be an integer >= 2; got 1"),
        (dict(reassess=0), "compare.reassess must be an integer >= 1; got 0"),
        (dict(reassess_repeats=1), "compare.reassess_repeats must be an integer >= 2; got 1"),
        (dict(seeds=2.0), "compare.seeds must be an integer >= 1 or a non-empty list .*; got 2.0"),
        (dict(seeds=True), "compare.seeds must be .*; got True"),
        (dict(seeds=[0, True]), "compare.seeds must be .*; got \\[0, True\\]"),
        (dict(seeds="01"), "compare.seeds must be .*; got '01'"),
        (dict(methods={"es": "nope"}),
         r"compare.methods\['es'\]: must be one of 'es', .*; got 'nope'"),
        (dict(key=0), "compare.key must be a JAX PRNG key"),
        (dict(on_run=3), "compare.on_run must be a function"),
    ]:  # fmt: skip
        kw = dict(methods=two, key=jr.key(0), seeds=1, iterations=1, progress=False) | kwargs
        with pytest.raises(ValueError, match=message):
            diffgrn.compare(small_objective, **kw)
