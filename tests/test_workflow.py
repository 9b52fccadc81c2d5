"""Smoke test: the real `spacy project run all` workflow with a tiny random BERT and tiny overrides."""

import json
import os
import shutil
import subprocess
import sys
from typing import Dict, Optional

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


# what the two runs of the whole workflow add to the environment: no hub look-ups, two training steps
TINY_TRAINING_ENV = {
    "HF_HUB_OFFLINE": "1",
    "SPACY_CONFIG_OVERRIDES": "--training.max_steps=2 --training.eval_frequency=1",
}


def run_project(project, step: str, variables: Dict[str, object], *, env: Optional[Dict[str, str]] = None):
    """`python -m spacy project run STEP` in the project copy, with `--vars.NAME VALUE` for each variable (in order)
    and `env` added to this process's environment; the completed process, its output captured as text."""
    cmd = [sys.executable, "-m", "spacy", "project", "run", step, str(project)]
    for name, value in variables.items():
        cmd += [f"--vars.{name}", str(value)]
    return subprocess.run(cmd, cwd=project, env={**os.environ, **env} if env else None, capture_output=True, text=True)


@pytest.mark.slow
def test_all_workflow_with_tiny_overrides(project_copy, tiny_bert):
    result = run_project(project_copy, "all", {"config": "tiny", "backbone": tiny_bert}, env=TINY_TRAINING_ENV)
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
    own = {
        "config": "tiny",
        "backbone": tiny_bert,
        "bio_dir": data,
        "corpus_dir": "corpus/own",
        "training_dir": "training/own",
        "metrics_dir": "metrics/own",
        "name": "en_own_ner",
    }
    result = run_project(project_copy, "all", own, env=TINY_TRAINING_ENV)
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
    result = run_project(project_copy, "convert", {"bio_dir": data, "corpus_dir": "corpus/one_file", "n_sents": 1})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    info = json.loads((project_copy / "corpus" / "one_file" / "corpus.json").read_text())
    assert {k: v["documents"] for k, v in info["splits"].items()} == {"all": 30, "train": 24, "dev": 3, "test": 3}
    assert info["splits"]["all"]["repaired_or_skipped"] == 10
