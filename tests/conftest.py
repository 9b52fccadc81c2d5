import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def write(tmp_path):
    """write(name, text or bytes) -> path in tmp_path."""

    def _write(name, content):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_bytes(content.encode("utf-8"))
        return p

    return _write


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny random BERT (2 layers, width 32) with the embedded backbone's vocabulary."""
    from .tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


TECH_SENTENCES = [
    "We rewrote the parser in [Rust] and kept the [Python] bindings .",
    "The [PostgreSQL] cluster now runs on [Kubernetes] .",
    "Nobody on the team liked the new office .",
    "Install [Node.js] before you run the [React] build .",
    "Our phones ship with [Android 14] and [Wi-Fi 7] .",
    "The [lithium-ion battery] lasted two days .",
    "She moved the jobs from [Jenkins] to [GitHub Actions] last week .",
    "A python swallowed the rabbit whole .",
]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """train.spacy and dev.spacy made from a few bracket-marked sentences."""
    from tech_ner.corpus.convert import convert

    folder = tmp_path_factory.mktemp("tiny-corpus")
    lines = []
    for sent in TECH_SENTENCES:
        inside = False
        for tok in sent.replace("[", " [ ").replace("]", " ] ").split():
            if tok == "[":
                inside, first = True, True
            elif tok == "]":
                inside = False
            else:
                lines.append(f"{tok}\t{('B-TECH' if first else 'I-TECH') if inside else 'O'}")
                first = False
        lines.append("")
    (folder / "all.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("train", "dev"):
        convert([folder / "all.tsv"], folder / f"{name}.spacy", n_sents=2, strict=True)
    return folder


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, tiny_bert, tiny_corpus):
    """A pipeline trained for a few steps from configs/tiny.cfg (transformer, ner, tech_terms)."""
    from tech_ner.training.train import train

    out = tmp_path_factory.mktemp("tiny-pipeline")
    train(
        ROOT / "configs" / "tiny.cfg",
        out,
        overrides={
            "paths.train": str(tiny_corpus / "train.spacy"),
            "paths.dev": str(tiny_corpus / "dev.spacy"),
            "paths.backbone": str(tiny_bert),
        },
    )
    return out / "model-last"
