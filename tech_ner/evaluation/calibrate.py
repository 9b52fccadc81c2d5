"""Calibration: choose the recogniser's `outside_bias` on a held-out set, after training.

A token classifier trained on one hand's corpus is over-confident on text of another hand: on real text the
shipped model found most terms but also tagged companies, units and everyday words. `outside_bias` (a setting
of the `bio_ner` component) is added to the `O` tag's log-probability before decoding, so a positive bias asks
for more evidence before a token joins an entity. This module scores a grid of biases on a held-out set with
one forward pass (the transformer runs once; only the decoding is repeated), picks the bias with the best
F-beta (beta < 1 weighs precision more, beta > 1 recall) among those that reach a precision floor, and writes the
pipeline with that bias in both its config and the component's saved settings, so `spacy.load` and the package
step see it.

The floor is checked against a lower confidence bound of the precision, not the precision itself: the held-out set
is a sample (the wild dev set has about 260 entities), so a bias whose precision only just reaches the floor there
misses it on new text about half the time. The bound is Wilson's, one-sided, at `confidence` (default 0.9) over the
predicted entities. It treats them as independent and one bias as chosen in advance; errors cluster in documents and
the grid picks among 29 biases, so the real coverage is somewhat lower than `confidence`: a margin, not a guarantee.

Without a floor, a bias is chosen for F-beta alone, on a set that has often chosen the model-best checkpoint too (own
data's dev split): there the best bias is partly the set's noise. `out_of_sample` measures that: the bias chosen on
half of the documents, scored on the other half against bias 0, over random halvings. On StackOverflow's dev split
the choice lost 0.3 point of F1 that way on three of four models (benchmarks/results/recipe_dev_so_tech*.json), so
`tech-ner calibrate` keeps a bias other than 0 only where its mean gain out of sample is above 0.

Calibrate on a set that was not used for training and is not the test split: the embedded corpus uses its
"wild" dev set (another hand's text, in registers the training corpus lacks); own data uses its dev split.
"""

from pathlib import Path
from statistics import NormalDist
from typing import Any, Dict, List, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Config

from .gold_tokens import token_copies

BIASES: Tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(-8, 21))  # -2.0 .. 5.0
COMPONENT = "ner"


def precision_lower_bound(correct: int, predicted: int, confidence: float) -> float:
    """Wilson's one-sided lower confidence bound of a precision.

    correct (int): Predicted entities that are right.
    predicted (int): Predicted entities.
    confidence (float): From 0.5 (the precision itself) up to, not including, 1.
    RETURNS (float): The bound; 0 when nothing was predicted.
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be from 0.5 up to, not including, 1, got {confidence}")
    if predicted <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p, n, z2 = correct / predicted, predicted, z * z
    centre = p + z2 / (2 * n)
    spread = z * (p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5
    return max(0.0, (centre - spread) / (1 + z2 / n))


def f_beta(p: float, r: float, beta: float) -> float:
    """F-beta of a precision and a recall (0 when both are 0)."""
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0


def _logits(nlp: Language, gold_docs: Sequence[Doc], batch_size: int) -> Tuple[List[Doc], List]:
    """Copies of the gold tokens after the components before the recogniser, and its logits for each."""
    names = nlp.pipe_names
    before = names[: names.index(COMPONENT)]
    with nlp.select_pipes(enable=before):
        docs = list(nlp.pipe(token_copies(nlp.vocab, gold_docs), batch_size=batch_size))
    ner: Any = nlp.get_pipe(COMPONENT)  # a BioNER: decode, set_annotations, model
    logits: List[Any] = []
    for i in range(0, len(docs), batch_size):
        batch = docs[i : i + batch_size]
        logits.extend(ner.model.ops.to_numpy(s) for s in ner.model.predict(batch))
    return docs, logits


def sweep(
    nlp: Language,
    gold_docs: Sequence[Doc],
    *,
    biases: Sequence[float] = BIASES,
    beta: float = 1.0,
    confidence: float = 0.9,
    batch_size: int = 64,
) -> Tuple[List[Dict], Dict[float, numpy.ndarray]]:
    """Entity precision, recall, F1 and F-beta (spaCy's scorer) for each bias, on `gold_docs`, with the number of
    predicted entities and the precision's lower bound at `confidence` (`precision_lower_bound`); and for each bias
    the (right, predicted, gold) entities of each document, an array of shape (documents, 3), for `out_of_sample`."""
    ner: Any = nlp.get_pipe(COMPONENT)
    after = [nlp.get_pipe(name) for name in nlp.pipe_names[nlp.pipe_names.index(COMPONENT) + 1 :]]
    docs, logits = _logits(nlp, gold_docs, batch_size)
    rows, counts = [], {}
    for bias in biases:
        predicted = []
        for doc, scores in zip(docs, logits):
            copy = doc.copy()
            ner.set_annotations([copy], [ner.decode(scores, outside_bias=bias)])
            for component in after:  # what runs after the recogniser (term_rules) shapes the entities too
                copy = component(copy)
            predicted.append(copy)
        s = Scorer.score_spans([Example(p, g) for p, g in zip(predicted, gold_docs)], "ents")
        p, r, f = (s["ents_p"] or 0.0), (s["ents_r"] or 0.0), (s["ents_f"] or 0.0)
        counts[bias] = numpy.array([_counts(d, g) for d, g in zip(predicted, gold_docs)])
        correct, predicted_ents = (int(n) for n in counts[bias][:, :2].sum(axis=0))
        rows.append(
            {
                "outside_bias": bias,
                "predicted": predicted_ents,
                "p": round(p, 4),
                "p_low": round(precision_lower_bound(correct, predicted_ents, confidence), 4),
                "r": round(r, 4),
                "f": round(f, 4),
                "f_beta": round(f_beta(p, r, beta), 4),
            }
        )
    return rows, counts


def out_of_sample(
    counts: Dict[float, numpy.ndarray], beta: float = 1.0, rounds: int = 100, seed: int = 0
) -> Dict[str, Any]:
    """What choosing a bias is worth on documents it was not chosen on: over `rounds` random halvings of the
    documents, the bias with the best F-beta on one half (nearest 0 among equals, as `choose`), scored on the other
    half against bias 0, both ways round.

    counts (Dict[float, numpy.ndarray]): Per bias (0 among them), per document (right, predicted, gold) entities, as
        `sweep` gives them.
    RETURNS (Dict[str, Any]): The mean and standard deviation of the gain in F-beta, the share of halvings where it
        is above 0, and the median of the biases chosen.
    """
    if 0.0 not in counts:
        raise ValueError("out_of_sample needs bias 0 among the biases")
    biases = sorted(counts, key=abs)  # nearest 0 first: max keeps the first of equals
    documents = len(counts[0.0])
    if documents < 2:
        raise ValueError("out_of_sample needs two documents or more")
    b2 = beta * beta

    def score(bias: float, rows: numpy.ndarray) -> float:
        right, predicted, gold = counts[bias][rows].sum(axis=0)
        denominator = b2 * gold + predicted
        return float((1 + b2) * right / denominator) if denominator else 0.0

    rng, gains, chosen = numpy.random.default_rng(seed), [], []
    for _ in range(rounds):
        order = rng.permutation(documents)
        halves = order[: documents // 2], order[documents // 2 :]
        for pick, other in (halves, halves[::-1]):
            bias = max(biases, key=lambda b: score(b, pick))
            chosen.append(bias)
            gains.append(score(bias, other) - score(0.0, other))
    return {
        "halvings": rounds,
        "gain_mean": round(float(numpy.mean(gains)), 4),
        "gain_sd": round(float(numpy.std(gains, ddof=1)), 4),
        "gain_positive_share": round(sum(g > 0 for g in gains) / len(gains), 3),
        "bias_median": float(numpy.median(chosen)),
    }


def _counts(predicted: Doc, gold: Doc) -> Tuple[int, int, int]:
    """(right, predicted, gold) entities of one document, as spaCy's scorer matches them on the same tokens: label
    and character offsets."""
    spans = {(e.label_, e.start_char, e.end_char) for e in predicted.ents}
    right = len(spans & {(e.label_, e.start_char, e.end_char) for e in gold.ents})
    return right, len(spans), len(gold.ents)


def choose(rows: Sequence[Dict], min_precision: float = 0.0) -> Tuple[Dict, bool]:
    """The row with the best F-beta among those whose precision's lower bound (`p_low`) reaches `min_precision`
    (all rows when none does); among equals, the bias nearest 0 (the model as trained).

    RETURNS (Tuple[Dict, bool]): The row, and whether it reaches `min_precision`.
    """
    eligible = [row for row in rows if row["p_low"] >= min_precision]
    best = max(eligible or rows, key=lambda row: (row["f_beta"], -abs(row["outside_bias"])))
    return best, bool(eligible)


def save_with_bias(nlp: Language, bias: float, output: Path) -> None:
    """Write the pipeline to `output` with `outside_bias` set in the component and in config.cfg."""
    ner: Any = nlp.get_pipe(COMPONENT)
    ner.cfg["outside_bias"] = float(bias)
    nlp.to_disk(output)
    config_path = Path(output) / "config.cfg"
    config = Config().from_disk(config_path, interpolate=False)
    config["components"][COMPONENT]["outside_bias"] = float(bias)
    config.to_disk(config_path)
