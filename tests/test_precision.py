"""The CPU precision a pipeline runs in: re-resolved on the CPU that loads it (a wheel is built on one machine and
run on others), and measured at packaging robustly to a noisy machine."""

import json
import os
import warnings

import pytest
import spacy

import tech_ner.pipeline.precision as precision_module
from tech_ner.packaging.package import rank_precisions, speed_summary, time_interleaved, with_precision_component
from tech_ner.pipeline.precision import current_precision
from tech_ner.pipeline.reduced import CACHE_CAPACITY, CACHE_VARS


def packaged(tiny_pipeline, tmp_path, record):
    """A copy of the tiny pipeline set up as the package step leaves it: component on "best", `record` in meta.json."""
    out = with_precision_component(tiny_pipeline, tmp_path / "pkg", "best")
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["cpu_precision"] = record
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return out


@pytest.fixture
def cpu(monkeypatch):
    """cpu(bf16=..., int8=...): pretend to run on a CPU with or without native bfloat16 and an int8 engine."""
    monkeypatch.delenv("TECH_NER_PRECISION", raising=False)
    for names in CACHE_VARS:  # set, then removed: so that what a load sets is undone after the test
        for name in names:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
    monkeypatch.setattr(precision_module, "_WARNED", set())

    def _cpu(*, bf16: bool, int8: bool = True):
        monkeypatch.setattr(precision_module, "native_bf16", lambda: bf16)
        monkeypatch.setattr(precision_module, "int8_available", lambda: int8)

    return _cpu


BF16_WON = {"chosen": "bf16", "acceptable": ["bf16", "fp32"], "rule": "measured"}
BF16_THEN_INT8 = {"chosen": "bf16", "acceptable": ["bf16", "int8", "fp32"], "rule": "measured"}


def test_bf16_chosen_at_packaging_is_not_applied_on_a_cpu_without_native_bf16(tiny_pipeline, tmp_path, cpu):
    path = packaged(tiny_pipeline, tmp_path, BF16_WON)
    cpu(bf16=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the package's own choice falls back quietly: only logged and recorded
        nlp = spacy.load(path)
    component = nlp.get_pipe("cpu_precision")
    assert component.applied == "fp32" and current_precision(nlp) == "fp32"
    assert "bf16" in component.reason and "native bfloat16" in component.reason


def test_the_recorded_next_best_is_applied(tiny_pipeline, tmp_path, cpu):
    path = packaged(tiny_pipeline, tmp_path, BF16_THEN_INT8)
    cpu(bf16=False, int8=True)
    nlp = spacy.load(path)
    assert nlp.get_pipe("cpu_precision").applied == "int8" and current_precision(nlp) == "int8"
    cpu(bf16=False, int8=False)
    component = spacy.load(path).get_pipe("cpu_precision")
    assert component.applied == "fp32" and "int8" in component.reason and "bf16" in component.reason


def test_bf16_chosen_at_packaging_is_applied_where_native(tiny_pipeline, tmp_path, cpu):
    path = packaged(tiny_pipeline, tmp_path, BF16_THEN_INT8)
    cpu(bf16=True)
    component = spacy.load(path).get_pipe("cpu_precision")
    assert component.applied == "bf16" and "measured" in component.reason


def test_bf16_bounds_the_kernel_caches_unless_the_user_set_them(tiny_pipeline, tmp_path, cpu, monkeypatch):
    path = packaged(tiny_pipeline, tmp_path, BF16_WON)
    cpu(bf16=False)
    spacy.load(path)  # fp32 here: the caches are left as they are
    assert not any(name in os.environ for names in CACHE_VARS for name in names)
    cpu(bf16=True)
    spacy.load(path)
    assert [os.environ.get(names[0]) for names in CACHE_VARS] == [CACHE_CAPACITY] * len(CACHE_VARS)
    for names in CACHE_VARS:  # a value the user set, under any of a library's names, is kept
        for name in names:
            for other in names:
                monkeypatch.delenv(other, raising=False)
            monkeypatch.setenv(name, "256")
            spacy.load(path)
            assert os.environ[name] == "256" and not any(other in os.environ for other in names if other != name)


def test_a_package_with_only_the_old_record_falls_back_too(tiny_pipeline, tmp_path, cpu):
    path = packaged(tiny_pipeline, tmp_path, {"chosen": "bf16", "rule": "set with --precision"})
    cpu(bf16=False)
    assert spacy.load(path).get_pipe("cpu_precision").applied == "fp32"


@pytest.mark.parametrize("record", [None, {}, "bf16"])
def test_best_without_a_record_is_fp32_and_says_so(tiny_pipeline, tmp_path, cpu, record):
    path = packaged(tiny_pipeline, tmp_path, record)
    cpu(bf16=True)
    component = spacy.load(path).get_pipe("cpu_precision")
    assert component.applied == "fp32" and "records no measured precisions" in component.reason


@pytest.mark.parametrize(
    "record,message",
    [
        ({"acceptable": ["bf16", "fp16"]}, "cpu_precision.acceptable"),
        ({"acceptable": "bf16"}, "cpu_precision.acceptable"),
    ],
)
def test_a_bad_record_is_named(tiny_pipeline, tmp_path, cpu, record, message):
    path = packaged(tiny_pipeline, tmp_path, record)
    cpu(bf16=True)
    with pytest.raises(ValueError, match=message):
        spacy.load(path)


def test_an_explicit_bf16_wins_but_warns_once(tiny_pipeline, tmp_path, cpu, monkeypatch):
    path = packaged(tiny_pipeline, tmp_path, BF16_WON)
    cpu(bf16=False)
    monkeypatch.setenv("TECH_NER_PRECISION", "bf16")
    with pytest.warns(UserWarning, match="no native bfloat16") as caught:
        first = spacy.load(path)
        monkeypatch.delenv("TECH_NER_PRECISION")
        second = spacy.load(path, config={"components": {"cpu_precision": {"precision": "bf16"}}})
    assert len([w for w in caught if "bfloat16" in str(w.message)]) == 1
    assert first.get_pipe("cpu_precision").applied == "bf16" and current_precision(first) == "bf16"
    assert "TECH_NER_PRECISION" in first.get_pipe("cpu_precision").reason
    assert second.get_pipe("cpu_precision").applied == "bf16" and "config" in second.get_pipe("cpu_precision").reason


def test_an_explicit_setting_in_the_config_wins(tiny_pipeline, tmp_path, cpu):
    path = packaged(tiny_pipeline, tmp_path, BF16_WON)
    cpu(bf16=True)
    nlp = spacy.load(path, config={"components": {"cpu_precision": {"precision": "fp32"}}})
    component = nlp.get_pipe("cpu_precision")
    assert component.applied == "fp32" and "config" in component.reason


def test_a_bad_environment_setting_is_named(tiny_pipeline, tmp_path, cpu, monkeypatch):
    path = packaged(tiny_pipeline, tmp_path, BF16_WON)
    cpu(bf16=True)
    monkeypatch.setenv("TECH_NER_PRECISION", "fp16")
    with pytest.raises(ValueError, match="TECH_NER_PRECISION"):
        spacy.load(path)


# ---------------------------------------------------------------- measurement at packaging


class FakeClock:
    """A timer that each run advances by its scripted duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_candidates_are_timed_interleaved_and_chosen_by_median():
    clock = FakeClock()
    # fp32 is the faster, but its second run met a busy machine: one slow sample must not hand the choice to bf16
    durations = {"fp32": [1.0, 9.0, 1.1], "bf16": [1.5, 1.4, 1.6]}
    calls = []

    def run(name):
        def _run():
            clock.now += durations[name][calls.count(name)]
            calls.append(name)

        return _run

    seconds = time_interleaved({name: run(name) for name in durations}, rounds=3, timer=clock)
    assert calls == ["fp32", "bf16"] * 3  # A B A B A B: a slow spell falls on both alike
    assert {name: pytest.approx(secs) for name, secs in durations.items()} == seconds
    measured = {name: {"ents_f": 0.9, **speed_summary(1000, secs)} for name, secs in seconds.items()}
    assert measured["fp32"]["words_per_s"] == pytest.approx(1000 / 1.1, abs=0.1)  # the median, not the mean (3.7 s)
    assert measured["fp32"]["rounds_words_per_s"] == pytest.approx([1000.0, 1000 / 9, 1000 / 1.1], abs=0.1)
    assert rank_precisions(measured, 0.005) == ["fp32"]  # bf16 is slower than fp32: never worth applying


def test_rank_keeps_the_faster_precisions_within_tolerance_fastest_first():
    measured = {
        "fp32": {"ents_f": 0.80, "words_per_s": 1000.0},
        "bf16": {"ents_f": 0.799, "words_per_s": 1600.0},
        "int8": {"ents_f": 0.797, "words_per_s": 1400.0},
    }
    assert rank_precisions(measured, 0.005) == ["bf16", "int8", "fp32"]
    measured["int8"]["ents_f"] = 0.79  # 1 point below fp32: out
    assert rank_precisions(measured, 0.005) == ["bf16", "fp32"]
    measured["bf16"] = {"skipped": "no engine"}
    assert rank_precisions(measured, 0.005) == ["fp32"]
