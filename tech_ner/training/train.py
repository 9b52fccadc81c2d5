"""Training through spaCy's config system, with the project's functions registered.

A config's `[budget]` section gives the training length in passes over the training data (epochs), so that one
recipe fits a corpus of any size. The passes come from the corpus's size: `words` word passes in all, so a small
corpus is seen more often than a large one, within `min_epochs` and `max_epochs` (or `epochs`, when above 0, fixes
them). `max_steps`, `eval_frequency`, `patience` (early stopping) and the warm-up are then derived from the epochs and
the number of batches the configured batcher makes of the training corpus.
"""

import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from . import registrations  # noqa: F401  (the config functions a training config names)
from ..pipeline.backbone import resolve_backbone
from ..files.problems import InputError


def train(config: Path, output: Path, *, overrides: Optional[Dict[str, object]] = None, gpu_id: int = -1) -> Path:
    """Train a pipeline from a config; model-best and model-last land in `output`.

    overrides (Dict[str, object]): dotted config overrides, e.g. {"paths.train": "corpus/spacy/train.spacy"}.
    gpu_id (int): -1 for CPU, else the GPU to train on.
    RETURNS (Path): the output folder.
    """
    from spacy.cli.train import train as spacy_train
    from spacy.util import load_config

    overrides = dict(overrides or {})  # the command line's and SPACY_CONFIG_OVERRIDES (tech-ner train)
    cfg = load_config(config, overrides=overrides, interpolate=False)
    backbone = cfg["paths"].get("backbone")
    if backbone:
        resolve_backbone(str(backbone), strict=True)  # one clear line before any work
    for key in ("paths.train", "paths.dev"):
        value = overrides.get(key, cfg["paths"].get(key.split(".")[1]))
        if value in (None, "null") or not Path(str(value)).exists():
            raise InputError(None, None, f"--{key} {value}: no such corpus; run `spacy project run convert` first")
    budget = epoch_budget(cfg, overrides)
    overrides.update(budget)
    if budget:
        print(
            f"Budget: {budget['budget.epochs']:g} epochs, {budget['training.max_steps']} steps, evaluation every "
            f"{budget['training.eval_frequency']}, early stop after {budget['training.patience']} without a better dev score"
        )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    log = overrides.get("paths.log", cfg["paths"].get("log"))
    if log not in (None, "null") and Path(str(log)).exists():
        Path(str(log)).unlink()  # our output from an earlier run; spaCy would refuse to write it
    spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    return output


def corpus_size(cfg, train_path: str) -> Tuple[int, int]:
    """RETURNS (Tuple[int, int]): The batches the config's training batcher makes of one pass over the training
    corpus, and the corpus's words (tokens)."""
    import spacy
    from spacy.training.corpus import Corpus
    from spacy.util import registry

    nlp = spacy.blank(cfg["nlp"]["lang"])
    batcher = registry.resolve({"batcher": cfg["training"]["batcher"]})["batcher"]
    examples = list(Corpus(train_path, max_length=0)(nlp))
    words = sum(len(eg.reference) for eg in examples)
    return max(1, sum(1 for _ in batcher(examples))), words


def budget_epochs(budget: Dict[str, Any], words: int) -> float:
    """The passes over a training corpus of `words` words that a `[budget]` section gives: `epochs` when above 0,
    else `words` (the budget's word passes) over the corpus's words, within min_epochs and max_epochs, to two
    decimals. RETURNS (float): The epochs; 0 when the budget is off (no epochs and no words).
    """
    epochs = float(budget.get("epochs", 0) or 0)
    if epochs > 0:
        return epochs
    passes = float(budget.get("words", 0) or 0)
    if passes <= 0:
        return 0.0
    low = float(budget.get("min_epochs", 1) or 1)
    high = float(budget.get("max_epochs", 0) or 0) or math.inf
    return round(min(high, max(low, passes / max(1, words))), 2)


def epoch_budget(cfg, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """The overrides that `[budget]` implies for this corpus; none when the budget is off (epochs and words 0, or no
    section) or when `training.max_steps` is given explicitly (an override wins).

    RETURNS (Dict[str, Any]): budget.epochs (the passes derived), training.max_steps, eval_frequency, patience and the
        warm-up steps.
    """
    budget = cfg.get("budget") or {}
    if not (budget.get("epochs") or budget.get("words")) or "training.max_steps" in overrides:
        return {}
    resolved = cfg.copy()
    for key, value in overrides.items():  # the paths given on the command line, for the corpus and batcher
        section, _, name = key.partition(".")
        if section in resolved and "." not in name:
            resolved[section][name] = value
    resolved = resolved.interpolate()
    per_epoch, words = corpus_size(resolved, str(resolved["paths"]["train"]))
    epochs = budget_epochs(budget, words)
    steps = max(1, math.ceil(epochs * per_epoch))
    evals = max(1, int(budget.get("evals_per_epoch", 2)))
    out = {
        "budget.epochs": epochs,  # saved with the pipeline: the passes this corpus got
        "training.max_steps": steps,
        "training.eval_frequency": max(1, per_epoch // evals),
        "training.patience": math.ceil(float(budget.get("patience_epochs", 0) or 0) * per_epoch),
        "training.optimizer.learn_rate.warmup_steps": math.ceil(float(budget.get("warmup_share", 0.1)) * steps),
    }
    return out
