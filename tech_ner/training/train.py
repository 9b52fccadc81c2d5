"""Training through spaCy's config system, with the project's functions registered.

A config's `[budget]` section gives the training length in passes over the training data (epochs), so that one
recipe fits a corpus of any size. The passes come from the corpus's size: `word_passes` words read in all, so a small
corpus is seen more often than a large one, within `min_epochs` and `max_epochs` (or `epochs`, when above 0, fixes
them). `max_steps`, `eval_frequency`, `patience` (early stopping) and the warm-up are then derived from the epochs and
the number of batches the configured batcher makes of the training corpus; the last step is always evaluated.
"""

import math
from pathlib import Path
from typing import Any, Dict, Iterable, NamedTuple, Optional, Tuple

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
    if budget.summary:
        print(budget.summary)
    overrides.update(budget.overrides)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    log = overrides.get("paths.log", cfg["paths"].get("log"))
    if log not in (None, "null") and Path(str(log)).exists():
        Path(str(log)).unlink()  # our output from an earlier run; spaCy would refuse to write it
    spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    return output


class CorpusSize(NamedTuple):
    documents: int
    words: int  # the tokens of the corpus


def count_corpus(examples: Iterable[Any]) -> CorpusSize:
    """Count a corpus's examples, streamed (it is never held whole).

    examples (Iterable[Example]): What a corpus reader yields.
    RETURNS (CorpusSize): Its documents and words.
    """
    documents = words = 0
    for eg in examples:
        documents += 1
        words += len(eg.reference)
    return CorpusSize(documents, words)


def training_examples(cfg) -> Iterable[Any]:
    """The training corpus as spaCy's training loop reads it: through the config's own reader (`[training]
    train_corpus`, e.g. [corpora.train]), with its limit, max_length and augmenter.

    cfg (Config): An interpolated training config.
    RETURNS (Iterable[Example]): One pass over the corpus, streamed.
    """
    import spacy
    from spacy.util import dot_to_object, registry

    reader = registry.resolve({"corpus": dot_to_object(cfg, cfg["training"]["train_corpus"])})["corpus"]
    return reader(spacy.blank(cfg["nlp"]["lang"]))


def batches_per_epoch(cfg, size: Optional[CorpusSize] = None) -> int:
    """The batches the config's training batcher makes of one pass over the training corpus.

    cfg (Config): An interpolated training config; its training corpus reader and [training.batcher] are used.
    size (Optional[CorpusSize]): The corpus's counts (count_corpus of training_examples), when known: spaCy's
        batch_by_sequence with a fixed size is then counted without reading the corpus again; any other batcher runs
        over the corpus (streamed).
    RETURNS (int): At least 1.
    """
    from spacy.util import registry

    batcher_cfg = cfg["training"]["batcher"]
    if size is not None and batcher_cfg.get("@batchers") == "spacy.batch_by_sequence.v1":
        per_batch = batcher_cfg.get("size")
        if isinstance(per_batch, int) and per_batch > 0:
            return max(1, math.ceil(size.documents / per_batch))
    batcher = registry.resolve({"batcher": batcher_cfg})["batcher"]
    return max(1, sum(1 for _ in batcher(training_examples(cfg))))


def batch_documents(batch_words: float, size: CorpusSize) -> int:
    """The documents per batch that hold about `batch_words` words of this corpus, on average.

    batch_words (float): The words a batch aims at.
    size (CorpusSize): The training corpus's counts.
    RETURNS (int): At least 1.
    """
    mean_words = size.words / max(1, size.documents)
    return max(1, round(batch_words / max(1.0, mean_words)))


def budget_on(budget: Dict[str, Any]) -> bool:
    """Whether a `[budget]` section sets the training length: `epochs` or `word_passes` above 0."""
    return float(budget.get("epochs") or 0) > 0 or float(budget.get("word_passes") or 0) > 0


def budget_epochs(budget: Dict[str, Any], corpus_words: int) -> float:
    """The passes over a training corpus that a `[budget]` section gives it.

    budget (Dict[str, Any]): The section: `epochs` above 0 fixes the passes; else `word_passes` over the corpus's
        words, within `min_epochs` (default 1) and `max_epochs` (default none).
    corpus_words (int): The training corpus's words.
    RETURNS (float): The epochs, to two decimals; 0 when the budget is off (see budget_on).
    """
    if not budget_on(budget):
        return 0.0
    epochs = float(budget.get("epochs") or 0)
    if epochs > 0:
        return epochs
    low = float(budget.get("min_epochs", 1))
    high = float(budget.get("max_epochs") or math.inf)
    if not 0 < low <= high:
        raise InputError(
            None, None, f"[budget] min_epochs {low:g}, max_epochs {high:g}: give 0 < min_epochs <= max_epochs"
        )
    return round(min(high, max(low, float(budget["word_passes"]) / max(1, corpus_words))), 2)


def evaluated_steps(steps: int, eval_frequency: int) -> Tuple[int, int]:
    """Training steps and evaluation frequency such that the last step is evaluated.

    spaCy's training loop evaluates every `eval_frequency` steps and stops at `max_steps`: the steps after the last
    evaluation would be trained, never scored, never a candidate for model-best. The frequency is lowered to the
    fewest evaluations that cover `steps` (at least as many as asked), and the steps rounded up to a whole number of
    them: by less than one step per evaluation.

    steps (int): The training steps wanted.
    eval_frequency (int): The evaluation frequency wanted.
    RETURNS (Tuple[int, int]): The steps and frequency; max_steps = a multiple of eval_frequency.
    """
    steps, eval_frequency = max(1, steps), max(1, min(eval_frequency, steps))
    evaluations = math.ceil(steps / eval_frequency)
    eval_frequency = math.ceil(steps / evaluations)
    return eval_frequency * evaluations, eval_frequency


class Budget(NamedTuple):
    overrides: Dict[str, Any]  # dotted config overrides; empty when the budget is off
    summary: str  # one line saying what the budget gave the corpus; empty when it is off


def epoch_budget(cfg, overrides: Dict[str, Any]) -> Budget:
    """The overrides that `[budget]` implies for this corpus.

    cfg (Config): The training config, not interpolated, with the overrides applied.
    overrides (Dict[str, Any]): The dotted overrides given; an explicit `training.max_steps` switches the budget off.
    RETURNS (Budget): The overrides training.batcher.size (documents per batch, from batch_words, for spaCy's
        batch_by_sequence unless given), training.max_steps, eval_frequency, patience and the warm-up steps, and a
        summary line; both empty when the budget is off (no section, see budget_on, or max_steps given).
    """
    budget = cfg.get("budget") or {}
    if not budget_on(budget) or "training.max_steps" in overrides:
        return Budget({}, "")
    resolved = cfg.copy()
    for key, value in overrides.items():  # the paths given on the command line, for the corpus and batcher
        section, _, name = key.partition(".")
        if section in resolved and "." not in name:
            resolved[section][name] = value
    resolved = resolved.interpolate()
    size = count_corpus(training_examples(resolved))
    out: Dict[str, Any] = {}
    batch_words = float(budget.get("batch_words") or 0)
    batcher = resolved["training"]["batcher"]
    if (
        batch_words > 0
        and batcher.get("@batchers") == "spacy.batch_by_sequence.v1"
        and "training.batcher.size" not in overrides
    ):
        out["training.batcher.size"] = batcher["size"] = batch_documents(batch_words, size)
    per_epoch = batches_per_epoch(resolved, size)
    epochs = budget_epochs(budget, size.words)
    steps, eval_frequency = evaluated_steps(
        math.ceil(epochs * per_epoch), max(1, per_epoch // max(1, int(budget.get("evals_per_epoch", 2))))
    )
    out.update(
        {
            "training.max_steps": steps,
            "training.eval_frequency": eval_frequency,
            "training.patience": math.ceil(float(budget.get("patience_epochs") or 0) * per_epoch),
            "training.optimizer.learn_rate.warmup_steps": math.ceil(float(budget.get("warmup_share", 0.1)) * steps),
        }
    )
    summary = (
        f"Budget: {epochs:g} epochs of {size.words:,} words ({size.documents:,} documents) in {per_epoch} batches of "
        f"{batcher.get('size')} documents: {steps} steps, evaluated every {eval_frequency}"
    )
    return Budget(out, summary)
