"""Smoke test: the real `spacy project run all` workflow with a tiny random BERT and tiny overrides."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

# the workflow's outputs at the top (a package folder of the same name, e.g. tech_ner/training, is code), caches anywhere
OUTPUTS = {"training", "metrics", "packages", "assets"}
SKIP = {".git", ".pytest_cache", "__pycache__", ".hypothesis"}


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("project") / "en_tech_ner"
    shutil.copytree(
        ROOT,
        dest,
        ignore=lambda d, names: [
            n
            for n in names
            if n in SKIP
            or n.endswith(".egg-info")
            or (d == str(ROOT) and n in OUTPUTS)
            or (d.endswith("corpus") and n in ("spacy", "stackoverflow"))
        ],
    )
    return dest


@pytest.mark.slow
def test_all_workflow_with_tiny_overrides(project_copy, tiny_bert):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SPACY_CONFIG_OVERRIDES": "--training.max_steps=2 --training.eval_frequency=1",
    }
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "project",
        "run",
        "all",
        str(project_copy),
        "--vars.config",
        "tiny",
        "--vars.backbone",
        str(tiny_bert),
    ]
    result = subprocess.run(cmd, cwd=project_copy, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for split in ("train", "dev", "test"):
        assert (project_copy / "corpus" / "spacy" / f"{split}.spacy").stat().st_size > 0
    assert (project_copy / "training" / "model-best" / "meta.json").exists()
    assert (project_copy / "training" / "train_log.jsonl").read_text().strip()
    metrics = json.loads((project_copy / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {"train", "test", "wild_dev", "wild_test"}
    for png in ("training_curve.png", "confusion_test.png"):
        assert (project_copy / "metrics" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dist = project_copy / "packages" / "en_tech_ner-0.1.0" / "dist"
    assert len(list(dist.glob("en_tech_ner-0.1.0-*.whl"))) == 1
    assert len(list(dist.glob("en_tech_ner-0.1.0.tar.gz"))) == 1
    meta = json.loads((project_copy / "packages" / "en_tech_ner-0.1.0" / "meta.json").read_text())
    assert meta["cpu_precision"]["chosen"] in {"fp32", "bf16", "int8"}
    assert meta["cpu_precision"]["measured"]["fp32"]["ents_f"] == pytest.approx(metrics["test"]["spacy"]["ents_f"])
    assert meta["sources"][0]["name"] == "en_tech_ner embedded technology-term corpus"
    assert meta["training_data"]["splits"]["train"]["sentences"] > 3000
    assert set(meta["performance"]["wild_test"]) == {"ents_p", "ents_r", "ents_f"}


OWN_DATA = "".join(
    f"{w}\t{t}\n"
    for w, t in [
        ("We", "O"),
        ("ship", "O"),
        ("Rust", "B-LANG"),
        ("on", "O"),
        ("Kubernetes", "B-PLATFORM"),
        (".", "O"),
        ("", ""),
        ("The", "O"),
        ("Postgres", "I-DB"),
        ("cluster", "O"),
        ("grew", "O"),
        (".", "O"),
        ("", ""),  # O I-X: repaired
        ("Nobody", "O"),
        ("used", "O"),
        ("Go", "B-LANG"),
        ("here", "O"),
        (".", "O"),
        ("", ""),
    ]
).replace("\t\n", "\n")


@pytest.mark.slow
def test_all_workflow_on_own_data_with_repairs_and_several_labels(project_copy, tiny_bert, tmp_path):
    data = tmp_path / "my_data"
    data.mkdir()
    for split, copies in (("train", 6), ("dev", 2), ("test", 2)):
        (data / f"{split}.txt").write_text(OWN_DATA * copies, encoding="utf-8")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SPACY_CONFIG_OVERRIDES": "--training.max_steps=2 --training.eval_frequency=1",
    }
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "project",
        "run",
        "all",
        str(project_copy),
        "--vars.config",
        "tiny",
        "--vars.backbone",
        str(tiny_bert),
        "--vars.bio_dir",
        str(data),
        "--vars.corpus_dir",
        "corpus/own",
        "--vars.training_dir",
        "training/own",
        "--vars.metrics_dir",
        "metrics/own",
        "--vars.name",
        "en_own_ner",
    ]
    result = subprocess.run(cmd, cwd=project_copy, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "problems repaired or skipped, mode repair" in result.stdout
    info = json.loads((project_copy / "corpus" / "own" / "corpus.json").read_text())
    assert info["labels"] == ["DB", "LANG", "PLATFORM"] and info["splits"]["train"]["repaired_or_skipped"] == 6
    meta = json.loads((project_copy / "packages" / "en_own_ner-0.1.0" / "meta.json").read_text())
    assert sorted(meta["labels"]["ner"]) == ["DB", "LANG", "PLATFORM"]
    assert meta["sources"][0]["name"].startswith("my_data (the user's data")
    assert meta["training_data"]["splits"]["train"]["sentences"] == 18
    assert (
        meta["training_data"]["labels"] == ["DB", "LANG", "PLATFORM"]
        and meta["training_data"]["conversion"] == "repair"
    )


@pytest.mark.slow
def test_convert_step_splits_one_own_file_by_seed(project_copy, tmp_path):
    data = tmp_path / "all_of_it.tsv"
    data.write_text(OWN_DATA * 10, encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "project",
        "run",
        "convert",
        str(project_copy),
        "--vars.bio_dir",
        str(data),
        "--vars.corpus_dir",
        "corpus/one_file",
        "--vars.n_sents",
        "1",
    ]
    result = subprocess.run(cmd, cwd=project_copy, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    info = json.loads((project_copy / "corpus" / "one_file" / "corpus.json").read_text())
    assert {k: v["documents"] for k, v in info["splits"].items()} == {"all": 30, "train": 24, "dev": 3, "test": 3}
    assert info["splits"]["all"]["repaired_or_skipped"] == 10
