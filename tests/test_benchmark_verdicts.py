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
    # seed 0 on a fast machine, seed 1 on a slow one: the mean of the ratios, not the ratio of the means (1.1)
    verdict = summary([_run(0, 100.0, 200.0, 0.80, 0.79), _run(1, 1000.0, 800.0, 0.82, 0.80)])
    assert verdict["wall_ours_over_hf_per_seed"] == [0.5, 1.25]
    assert verdict["wall_ours_over_hf"] == 0.875
    assert verdict["f1_ours_minus_hf"] == 0.015
    assert verdict["target_met"] is True
    assert summary([_run(0, 100.0, 99.0, 0.80, 0.79)])["target_met"] is False  # slower
    assert summary([_run(0, 90.0, 99.0, 0.78, 0.79)])["target_met"] is False  # worse
    assert summary([{"seed": 0, "hf": _run(0, 1, 1, 0, 0)["hf"]}]) == {}  # nothing finished both
