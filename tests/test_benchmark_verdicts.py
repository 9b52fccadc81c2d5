"""The verdicts benchmark scripts write (their trainings are too long for tests; their arithmetic is not)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed: int, ours: float, hf: float, ours_f: float, hf_f: float) -> dict:
    return {
        "seed": seed,
        "ours": {"process_seconds": ours, "seqeval_default": {"f": ours_f}},
        "hf": {"process_seconds": hf, "seqeval_default": {"f": hf_f}},
    }


def test_train_vs_hf_takes_wall_time_pair_by_pair():
    summary = _load("train_vs_hf").summary
    # seed 0 on a fast machine, seed 1 on a slow one: the ratios' geometric mean, not the ratio of the means (1.1)
    verdict = summary([_run(0, 100.0, 200.0, 0.80, 0.79), _run(1, 1000.0, 800.0, 0.82, 0.80)])
    assert verdict["wall_ours_over_hf_per_seed"] == [0.5, 1.25]
    assert verdict["wall_ours_over_hf"] == 0.791
    assert verdict["f1_ours_minus_hf"] == 0.015
    assert verdict["target_met"] is True
    assert summary([_run(0, 100.0, 200.0, 0.8, 0.8), _run(1, 200.0, 100.0, 0.8, 0.8)])["wall_ours_over_hf"] == 1.0
    assert summary([_run(0, 100.04, 100.0, 0.80, 0.79)])["target_met"] is False  # slower, if only just
    assert summary([_run(0, 90.0, 99.0, 0.78, 0.79)])["target_met"] is False  # worse
    assert summary([{"seed": 0, "hf": _run(0, 1, 1, 0, 0)["hf"]}]) == {}  # nothing finished both


def test_train_vs_hf_leaves_out_a_pair_run_on_two_machines():
    summary = _load("train_vs_hf").summary
    fast, slow = {"cpu": "A", "cpus": 2}, {"cpu": "B", "cpus": 2}
    one = _run(0, 90.0, 100.0, 0.80, 0.79)
    one["ours"]["machine"] = one["hf"]["machine"] = fast
    two = _run(1, 300.0, 100.0, 0.80, 0.79)  # HF timed on the fast machine, ours on the slow one
    two["ours"]["machine"], two["hf"]["machine"] = slow, fast
    verdict = summary([one, two])
    assert verdict["pairs_on_two_machines"] == [1]
    assert verdict["pairs_machine_unknown"] == []
    assert verdict["wall_ours_over_hf"] == 0.9
    assert summary([_run(0, 90.0, 100.0, 0.80, 0.79)])["pairs_machine_unknown"] == [0]


def test_train_vs_hf_tells_two_hosts_with_one_cpu_name_apart():
    module = _load("train_vs_hf")
    here = module.machine()
    if not Path("/proc/sys/kernel/random/boot_id").is_file():
        assert "boot" not in here
        return
    assert len(here["boot"]) >= 32
    pair = _run(0, 150.0, 100.0, 0.80, 0.79)  # HF resumed from a session on another host of the same CPU name
    pair["ours"]["machine"], pair["hf"]["machine"] = here, {**here, "boot": "another-session"}
    verdict = module.summary([pair])
    assert verdict["pairs_on_two_machines"] == [0]
    assert verdict["wall_ours_over_hf"] is None  # no wall verdict: JSON null, not NaN
    assert verdict["target_met"] is False


def test_train_vs_hf_no_train_writes_the_results_from_the_work_folder(tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command()(_load("train_vs_hf").main)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.spacy", "dev.spacy", "test.spacy"):
        (data / name).write_bytes(b"")  # never read: nothing trains
    setup = {"data": str(data.resolve()), "epochs": 2.0, "config": "configs/cpu_minilm.cfg"}
    pair = _run(0, 90.0, 100.0, 0.80, 0.79)
    for seed, recipes in ((0, ("hf", "ours")), (1, ("hf",))):  # seed 1: ours not trained yet
        folder = tmp_path / "work" / "c" / f"seed{seed}"
        folder.mkdir(parents=True)
        for recipe in recipes:
            (folder / f"{recipe}.result.json").write_text(json.dumps({"setup": setup, **pair[recipe]}))
    out = tmp_path / "out.json"
    args = ["--corpus", f"c={data}", "--seeds", "0,1", "--epochs", "2", "--config", "configs/cpu_minilm.cfg"]
    result = CliRunner().invoke(app, [*args, "--no-train", "--work", str(tmp_path / "work"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text())["corpora"]["c"]
    assert found["missing"] == ["seed 1 ours"]
    assert found["verdict"]["seeds_done"] == [0]
    assert found["verdict"]["wall_ours_over_hf"] == 0.9


def test_recipe_dev_reads_dev_figures_only(tmp_path):
    import json

    summary = _load("recipe_dev").dev_summary
    rows = [{"step": 0, "score": 0.03}, {"step": 100, "score": 0.71}, {"step": 200, "score": 0.69}]
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sweep = [
        {"outside_bias": -0.25, "p": 0.70, "r": 0.74, "f": 0.7195},
        {"outside_bias": 0.0, "p": 0.72, "r": 0.70, "f": 0.7099},
    ]
    report = {"chosen": sweep[0], "sweep": sweep}
    (tmp_path / "calibration.json").write_text(json.dumps(report), encoding="utf-8")
    got = summary(tmp_path)
    assert (got["steps"], got["evaluations"], got["best_step"]) == (200, 3, 100)
    assert (got["best_dev_f1"], got["last_dev_f1"]) == (0.71, 0.69)
    assert got["model_best_dev"] == {"p": 0.72, "r": 0.70, "f": 0.7099}  # the sweep's bias 0, not the chosen one
    assert got["calibrated_dev"] == {"outside_bias": -0.25, "p": 0.70, "r": 0.74, "f": 0.7195}
