"""Smoke test: the real `spacy project run all` workflow with a tiny random BERT and tiny overrides."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

SKIP = {".git", "training", "metrics", "packages", "assets", ".pytest_cache", "__pycache__", ".hypothesis"}


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("project") / "en_tech_ner"
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")
                                                        or (d.endswith("corpus") and n in ("spacy", "stackoverflow"))])
    return dest


@pytest.mark.slow
def test_all_workflow_with_tiny_overrides(project_copy, tiny_bert):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPACY_CONFIG_OVERRIDES": "--training.max_steps=2 --training.eval_frequency=1"}
    cmd = [sys.executable, "-m", "spacy", "project", "run", "all", str(project_copy),
           "--vars.config", "tiny", "--vars.backbone", str(tiny_bert)]
    result = subprocess.run(cmd, cwd=project_copy, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for split in ("train", "dev", "test"):
        assert (project_copy / "corpus" / "spacy" / f"{split}.spacy").stat().st_size > 0
    assert (project_copy / "training" / "model-best" / "meta.json").exists()
    assert (project_copy / "training" / "train_log.jsonl").read_text().strip()
    metrics = json.loads((project_copy / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {"train", "test"}
    for png in ("training_curve.png", "confusion_test.png"):
        assert (project_copy / "metrics" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dist = project_copy / "packages" / "en_tech_ner-0.1.0" / "dist"
    assert len(list(dist.glob("en_tech_ner-0.1.0-*.whl"))) == 1
    assert len(list(dist.glob("en_tech_ner-0.1.0.tar.gz"))) == 1
    meta = json.loads((project_copy / "packages" / "en_tech_ner-0.1.0" / "meta.json").read_text())
    assert meta["cpu_precision"]["chosen"] in {"fp32", "bf16", "int8"}
    assert meta["cpu_precision"]["measured"]["fp32"]["ents_f"] == pytest.approx(metrics["test"]["spacy"]["ents_f"])
