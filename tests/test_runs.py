"""Runs a researcher can trust: output folders, records and rerun, validation, pairing."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.random as jr
import pytest

import diffgrn
from diffgrn.cli import main as cli_main
from diffgrn.compare import Comparison
from diffgrn.train import History, TrainResult

SMALL = ["--quick", "--t-final", "1", "--dt", "0.05", "--replicates", "8", "--cells", "5",
         "--no-progress"]  # fmt: skip


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli_main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_out_is_refused_before_any_compute(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    train = ["train", *SMALL, "--generations", "1"]
    assert "is an existing file" in _error(capsys, [*train, "--out", "afile"])
    assert "afile is a file" in _error(capsys, [*train, "--out", "afile/sub"])
    assert "must name a folder" in _error(capsys, [*train, "--out", ""])
    assert "is an existing file" in _error(capsys, ["compare", *SMALL, "--out", "afile"])
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if not os.access(tmp_path / "ro", os.W_OK):  # (root may write anyway)
            assert "not writable" in _error(capsys, [*train, "--out", "ro/run"])
    finally:
        os.chmod(tmp_path / "ro", 0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ro"]  # nothing left
    # the same through the installed command, in a subprocess: exit 2, a clear message
    proc = subprocess.run(
        [sys.executable, "-m", "diffgrn.cli", *train, "--out", "afile/sub"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "afile is a file" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_run_folder_is_whole_recorded_and_rerun_gives_the_same_history(tmp_path, capsys):
    run, again = tmp_path / "run", tmp_path / "again"
    argv = ["train", *SMALL, "--generations", "2", "--seed", "3", "--out", str(run)]
    assert cli_main(argv) == 0
    text = (run / "history.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # ES's grad_norm: null, valid JSON
    summary = json.loads(text)
    record = summary["config"]["run"]
    assert record["seed"] == 3 and record["command"] == ["diffgrn", *argv]
    assert set(record["versions"]) >= {"diffgrn", "jax", "equinox", "diffrax", "optax"}
    assert diffgrn.load(run / "best").config["run"]["seed"] == 3  # meta.json too
    # one reported number: the best regulator's fresh-noise mean ± standard error
    fresh, result = summary["fresh_noise"], summary["result"]
    assert result["hard_utility"] == fresh["mean"] and result["repeats"] == fresh["repeats"]
    assert result["standard_error"] == pytest.approx(fresh["std"] / fresh["repeats"] ** 0.5)
    assert "mean ± s.e. on fresh noise" in capsys.readouterr().out
    # a non-empty target is refused; --overwrite replaces it whole (no stale files)
    assert "already holds files" in _error(capsys, argv)
    (run / "stale.png").write_text("old")
    assert cli_main([*argv, "--overwrite"]) == 0
    assert not (run / "stale.png").exists()
    assert not list(tmp_path.glob(".run*"))  # no temporary folder or lock left behind
    assert cli_main(["rerun", str(run), "--out", str(again)]) == 0
    first, second = (json.loads((d / "history.json").read_text()) for d in (run, again))
    for field in ("iteration", "hard_utility", "hard_s_pat", "replicate_steps"):
        assert first["history"][field] == second["history"][field], field
    assert first["fresh_noise"]["values"] == second["fresh_noise"]["values"]


def test_a_second_concurrent_run_is_refused(tmp_path):
    # A live process holds the lock beside the target: a second run (a subprocess,
    # as from another terminal) stops at once with a clear message.
    (tmp_path / ".run.lock").write_text(str(os.getpid()))
    proc = subprocess.run(
        [sys.executable, "-m", "diffgrn.cli", "train", *SMALL, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "another run is writing there" in proc.stderr
    assert not (tmp_path / "run").exists()
    # a lock left by a process that no longer exists is taken over
    (tmp_path / ".run.lock").write_text("999999999")
    folder = diffgrn._runs.RunFolder(tmp_path / "run")
    with folder:
        assert folder.locked


def test_a_solve_too_big_for_memory_is_refused_with_what_to_lower(capsys, tmp_path):
    # GridNoise stores every increment; the default CounterNoise one block of them.
    argv = ["train", "--quick", "--noise", "grid", "--t-final", "1e7", "--out", str(tmp_path / "x")]
    err = _error(capsys, argv)
    assert "GiB" in err and "lower t_final/dt" in err and "lower replicates or cells" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--lr", "-0.03", "--method", "adam"], "--lr must be a finite number > 0"),
        (["train", "--clip", "0", "--method", "adam"], "--clip must be a finite number > 0"),
        (["train", "--lr", "0.1"], "--lr does not apply to this run (es,"),
        (["train", "--method", "adam", "--population", "8"], "--population does not apply"),
        (["compare", "--methods", "es,adam", "--switch", "3"], "--switch does not apply"),
        (["compare", "--target", "2.0"], "--target must be a number in (0, 1]"),
        (["compare", "--target", "nan"], "--target must be a number"),
        (["compare", "--methods", ","], "compare --methods is empty"),
        (["compare", "--reassess", "-1"], "--reassess must be an integer >= 0"),
        (["compare", "--reassess-repeats", "1"], "--reassess-repeats must be an integer >= 2"),
        (["compare", "--baseline", "cmaes"], "--baseline 'cmaes' is not among the methods"),
    ],
)
def test_cli_options_are_validated(argv, words, capsys, tmp_path):
    assert words in _error(capsys, [*argv, "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_library_arguments_are_validated(small_objective, mlp, without_type_checks):
    with pytest.raises(ValueError, match="Objective.tissue"):
        diffgrn.Objective(tissue="chain")
    with pytest.raises(ValueError, match="Chain.n_cells must be an integer <= 2147483647"):
        diffgrn.Chain(1e300)  # (it passed the integer check and filled the memory)
    with pytest.raises(ValueError, match="GiB .* lower Lattice.rows x cols"):
        diffgrn.Lattice(40_000, 40_000)
    with pytest.raises(ValueError, match="regulator must be a diffgrn regulator"):
        diffgrn.train(small_objective, None, key=jr.key(0))
    with pytest.raises(ValueError, match="train.objective"):
        diffgrn.train("objective", mlp, key=jr.key(0))
    with pytest.raises(ValueError, match="compare.methods must be a non-empty"):
        diffgrn.compare(small_objective, {}, key=jr.key(0))
    with pytest.raises(ValueError, match="compare.target"):
        diffgrn.compare(small_objective, {"es": "es"}, key=jr.key(0), target=float("nan"))
    with pytest.raises(ValueError, match="learning_rate"):
        diffgrn.default_optimiser(-0.03)
    with pytest.raises(ValueError, match="clip"):
        diffgrn.default_optimiser(clip=0.0)


def test_load_expects_a_type_and_names_malformed_fields(tmp_path, mlp):
    path = diffgrn.save(tmp_path / "reg", mlp)
    assert isinstance(diffgrn.load(path, expect=diffgrn.MLPRegulator).regulator,
                      diffgrn.MLPRegulator)  # fmt: skip
    with pytest.raises(ValueError, match="not the expected TanhRegulator"):
        diffgrn.load(path, expect=diffgrn.TanhRegulator)
    meta = json.loads((path / "meta.json").read_text())
    meta["regulator"]["widths"] = ["eight"]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'regulator' field .* malformed"):
        diffgrn.load(path)
    # A missing field takes the constructor's default; the leaves' shapes must match.
    meta["regulator"]["widths"] = [4]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the saved parameter shapes"):
        diffgrn.load(path)


def _result(utilities, objective=None):
    h = History()
    for i, u in enumerate(utilities):
        for field, v in zip(History.__dataclass_fields__, (i, u, 1.0, 0.0, 0.0, 0.0, i, i)):
            getattr(h, field).append(v)
    return TrainResult(None, None, max(utilities), 0, {"objective": objective}, h, 0.0)


def test_speedups_pair_runs_by_seed_not_by_position():
    # es ran seeds 0 and 1; adam only seed 1 (reaching the target at iteration 1, as es's seed 1).
    comp = Comparison(
        runs={"es": [_result([0, 0, 0, 1]), _result([0, 1])], "adam": [_result([0, 1])]},
        fresh={"es": [dict(mean=1.0)] * 2, "adam": [dict(mean=1.0)]},
        target=0.5,
        seeds={"es": [0, 1], "adam": [1]},
    )
    (row,) = comp.speedups("es")
    assert row["seeds"] == [1] and row["wall_time_ratio"] == [1.0]  # not es seed 0 (3.0)


def test_success_is_the_fresh_lower_bound_past_the_target_not_the_mean():
    # Both fresh means are 1.0 ≥ 0.9; the lower 95 % bounds (t₀.₉₇₅,₂ = 4.30) are
    # 1.0 − 4.30 · 0.02 / √3 = 0.95 (a success) and 1.0 − 4.30 · 0.5 / √3 = −0.24 (not).
    fresh = [dict(mean=1.0, values=[1.0, 1.02, 0.98]), dict(mean=1.0, values=[0.5, 1.5, 1.0])]
    runs = {"es": [_result([0, 1]), _result([0, 1])]}
    (row,) = Comparison(runs, {"es": fresh}, 0.9).table()
    assert row["success_rate"] == 0.5 and row["fresh_median"] == 1.0
    text = Comparison(runs, {"es": fresh}, 0.9).to_markdown()
    assert "Success: a seed whose fresh-noise assessment's lower 95 % bound is ≥ the target" in text
    nan_draw = dict(mean=1.0, values=[1.0, None, 1.0])  # a NaN draw (JSON: null) fails
    (row,) = Comparison(runs, {"es": [fresh[0], nan_draw]}, 0.9).table()
    assert row["success_rate"] == 0.5
    with pytest.raises(ValueError, match="es seed 1: the fresh-noise assessment holds no per-draw"):
        Comparison(runs, {"es": [fresh[0], dict(mean=1.0)]}, 0.9).table()


def test_merge_needs_the_same_hard_objective():
    base = dict(tissue=dict(n_cells=7), readout=dict(temperature=20.0), bandwidth=0.5)
    a = Comparison({"cmaes": [_result([0, 0, 1])]}, {"cmaes": [dict(mean=1.0)]}, 0.5, None, base)
    wide = dict(base, readout=dict(temperature=10.0), bandwidth=2.0)
    b = Comparison({"adam": [_result([0, 1])]}, {"adam": [dict(mean=0.9)]}, 0.5, None, wide)
    merged = a.merge(b, {"adam": "adam, h = 2"})
    assert list(merged.runs) == ["cmaes", "adam, h = 2"]
    (row,) = merged.speedups("cmaes")
    assert row["wall_time_ratio"] == [2.0]  # cmaes at iteration 2, adam at 1 (wall time i)
    with pytest.raises(ValueError, match="in both"):
        merged.merge(b, {"adam": "cmaes"})
    other = dict(base, tissue=dict(n_cells=9))
    c = Comparison({"es": [_result([1])]}, {"es": [dict(mean=1.0)]}, 0.5, None, other)
    with pytest.raises(ValueError, match="different hard objectives"):
        a.merge(c)


def test_collect_refuses_runs_of_different_setups(tmp_path):
    for name, t_final in (("es-seed0", 20.0), ("adam-seed0", 5.0)):
        (tmp_path / name).mkdir()
        summary = dict(
            best_utility=0.5, best_iteration=0, compile_time=0.0, error=None,
            fresh_noise=dict(mean=0.5, values=[0.5, 0.5]), history=History().to_dict(),
            config=dict(objective=dict(dynamics=dict(t_final=t_final))),
        )  # fmt: skip
        (tmp_path / name / "history.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="another objective"):
        Comparison.collect(tmp_path)


def _interrupt_after(argv, first_line_prefix, wait=1.0):
    """Run `diffgrn ARGV` in a subprocess and press Ctrl-C once it is iterating."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffgrn.cli", *argv],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        # a run started in the background by a non-interactive shell inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline, seen = time.time() + 180, ""
    while time.time() < deadline:  # wait until it is iterating (a log line per 10 %)
        line = proc.stderr.readline()
        seen += line
        if line.startswith(first_line_prefix) or not line:
            break
    time.sleep(wait)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, seen + stderr, time.time() - t0


def _cli(*argv):
    """`diffgrn ARGV` in a subprocess (the same numerics as the interrupted one)."""
    proc = subprocess.run([sys.executable, "-m", "diffgrn.cli", *argv], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow  # a real interrupt and resume through the CLI: three processes
def test_ctrl_c_saves_a_whole_folder_exits_130_and_resume_continues_exactly(tmp_path):
    out, full = tmp_path / "run", tmp_path / "full"
    tiny = ["--quick", "--t-final", "1", "--dt", "0.1", "--replicates", "4"]  # ~3 ms a step
    argv = ["train", *tiny, "--generations", "800", "--checkpoint-every", "5"]
    code, stderr, _ = _interrupt_after([*argv, "--out", str(out)], "es: 80/800", wait=0.3)
    assert code == 130, stderr
    assert "interrupted at iteration" in stderr  # stopped early: the history below is short
    assert (out / "history.json").is_file() and (out / "best" / "meta.json").is_file()
    partial = json.loads((out / "history.json").read_text())
    assert partial["error"].startswith("interrupted")
    assert 80 <= len(partial["history"]["iteration"]) < 800
    assert (tmp_path / "run.checkpoint" / "checkpoint.json").is_file()
    assert not list(tmp_path.glob(".run*"))  # no temporary folder or lock left
    # resume from the checkpoint; the result equals an uninterrupted run's
    _cli("train", "--resume", str(out), "--no-progress")
    assert not (tmp_path / "run.checkpoint").exists()
    _cli(*argv, "--no-progress", "--out", str(full))
    a, b = (json.loads((d / "history.json").read_text()) for d in (out, full))
    for field in ("iteration", "hard_utility", "hard_s_rep", "replicate_steps"):
        assert a["history"][field] == b["history"][field], field
    assert a["best_iteration"] == b["best_iteration"]
    assert a["fresh_noise"]["values"] == b["fresh_noise"]["values"]


@pytest.mark.slow  # README suite's time; the checkpoint checks stay there (test_faults)
@pytest.mark.parametrize("method", ["es", "hybrid", "cmaes", "adam"])
def test_interrupted_and_resumed_training_equals_an_uninterrupted_run(
    small_objective, mlp, method, tmp_path
):
    import jax
    import jax.numpy as jnp

    if method == "hybrid":
        method = diffgrn.Hybrid(diffgrn.CMAES(population=6), diffgrn.Gradient(), switch=2)
    kw = dict(key=jr.key(1), iterations=6, progress=False, reassess=3, reassess_repeats=2)
    full = diffgrn.train(small_objective, mlp, method, **kw)

    def stop(i, res):
        if i == 3:
            raise KeyboardInterrupt

    folder = tmp_path / "ck"
    with pytest.warns(RuntimeWarning, match="interrupted"):
        part = diffgrn.train(small_objective, mlp, method, **kw, checkpoint=folder,
                             checkpoint_every=2, callback=stop)  # fmt: skip
    assert len(part.history) == 4
    res = diffgrn.train(small_objective, mlp, method, **kw, checkpoint=folder, resume=True)
    assert res.history.hard_utility == full.history.hard_utility
    assert res.best_iteration == full.best_iteration
    same = lambda h: [(c["iteration"], c["mean"], c["lower"]) for c in h.checks]
    assert same(res.history) == same(full.history) and len(full.history.checks) == 3
    for a, b in ((res.best_regulator, full.best_regulator), (res.final_regulator,
                                                             full.final_regulator)):  # fmt: skip
        la, lb = (jax.tree_util.tree_leaves(eqx_filter(r)) for r in (a, b))
        assert all(bool(jnp.array_equal(x, y)) for x, y in zip(la, lb))
    with pytest.raises(ValueError, match="another run"):
        diffgrn.train(small_objective, mlp, method, key=jr.key(1), iterations=7,
                      progress=False, checkpoint=folder, resume=True)  # fmt: skip
    with pytest.raises(ValueError, match="another run"):  # re-assessed otherwise
        diffgrn.train(small_objective, mlp, method, **dict(kw, reassess=2),
                      checkpoint=folder, resume=True)  # fmt: skip


def test_an_old_checkpoint_is_refused_naming_its_file(small_objective, mlp, tmp_path):
    import json

    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "state.eqx").write_bytes(b"")
    (folder / "checkpoint.json").write_text(json.dumps(dict(format="diffgrn-checkpoint-v1")))
    with pytest.raises(ValueError, match=r"checkpoint\.json was written by an earlier diffgrn"):
        diffgrn.train(small_objective, mlp, "es", key=jr.key(0), iterations=2,
                      progress=False, checkpoint=folder, resume=True)  # fmt: skip


def eqx_filter(tree):
    import equinox as eqx

    return eqx.filter(tree, eqx.is_array)


@pytest.fixture(scope="module")
def open_chain():
    return diffgrn.Objective(
        tissue=diffgrn.Chain(7, "open"),
        dynamics=diffgrn.Dynamics(t_final=5.0, dt=0.01),
        replicates=32,
    )


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_assess_flags_an_euler_artefact_and_passes_a_resolved_regulator(open_chain):
    stiff = diffgrn.TanhRegulator(51.0, 23.0, 0.395)  # CMA-ES's 0.852 on the tanh family
    with pytest.warns(RuntimeWarning, match="artefact of the time step"):
        res = diffgrn.assess(open_chain, stiff, key=jr.key(99), repeats=4)["resolution"]
    assert res["artefact"] and res["mean_dt"] - res["mean_fine"] > 0.1
    assert res["stiffness_visited"] > 5
    gentle = diffgrn.assess(open_chain, diffgrn.TanhRegulator(1.0, 10.0, 0.5), key=jr.key(99),
                            repeats=4)["resolution"]  # fmt: skip
    assert not gentle["artefact"] and gentle["stiffness_visited"] < 1
    assert "resolution" not in diffgrn.assess(open_chain, stiff, key=jr.key(9), refine=None)


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_max_stiffness_guard_rejects_unresolved_regulators(open_chain, without_type_checks):
    guarded = open_chain.replace(max_stiffness=1.0)
    assert float(guarded.hard(diffgrn.TanhRegulator(51.0, 23.0, 0.395), jr.key(0)).value) == 0
    gentle = diffgrn.TanhRegulator(1.0, 10.0, 0.5)
    assert float(guarded.hard(gentle, jr.key(0)).value) == float(
        open_chain.hard(gentle, jr.key(0)).value
    )
    assert diffgrn.Objective.from_config(guarded.config()).max_stiffness == 1.0
    with pytest.raises(ValueError, match="Objective.max_stiffness"):
        diffgrn.Objective(max_stiffness=0.0)
    # CMA-ES with a large step on the tanh family stays where Euler resolves f
    res = diffgrn.train(guarded, diffgrn.TanhRegulator(), diffgrn.CMAES(population=8, sigma=5.0),
                        key=jr.key(0), iterations=4, progress=False)  # fmt: skip
    assert float(diffgrn.diagnostics.stiffness(res.best_regulator, 0.01)) <= 1.0


@pytest.mark.parametrize(
    "argv, refused",
    [
        (["explore", "--budget", "2000"], None),  # an explicit default applies
        (["train", "--sigma", "0.1", "--size", "7", "--generations", "200"], None),
        (
            [
                "train",
                "--method",
                "adam",
                "--tissue",
                "hex",
                "--size",
                "10x10",
                "--genes",
                "2",
                "--inputs",
                "both",
            ],
            None,
        ),  # fmt: skip
        (["explore", "--method", "random", "--mutation", "0.3"], "--mutation"),
        (
            [
                "train",
                "--method",
                "adam",
                "--estimator",
                "likelihood-ratio",
                "--grad-replicates",
                "5",
            ],
            "--grad-replicates",
        ),  # fmt: skip
        (["train", "--regulator", "tanh", "--inputs", "both"], "--inputs"),
        (["train", "--steps", "5"], "--steps"),
    ],
)
def test_options_apply_when_an_object_they_set_is_in_the_run(argv, refused):
    from diffgrn import cli

    parser, sub = cli._parser()
    args = parser.parse_args(argv)
    if refused is None:
        cli.check_unused(args.command, args, sub.choices[args.command])
    else:
        with pytest.raises(ValueError, match=f"{refused} does not apply"):
            cli.check_unused(args.command, args, sub.choices[args.command])


def test_a_save_killed_between_its_renames_is_resumed_from_the_old_folder(
    small_objective, mlp, tmp_path
):
    def stop(i, res):
        if i == 2:
            raise KeyboardInterrupt

    folder = tmp_path / "ck"
    kw = dict(key=jr.key(1), iterations=4, progress=False, checkpoint=folder)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        diffgrn.train(small_objective, mlp, "es", **kw, checkpoint_every=1, callback=stop)
    folder.rename(tmp_path / ".ck.old-4242-17")  # another process's save, killed midway
    (tmp_path / ".ck.old-4242-3").mkdir()  # an older one, half removed
    res = diffgrn.train(small_objective, mlp, "es", **kw, resume=True)
    assert len(res.history) == 4 and folder.is_dir()
    assert not (tmp_path / ".ck.old-4242-17").exists()
