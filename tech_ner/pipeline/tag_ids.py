"""IOB2 tags as indices, the way the `bio_ner` head predicts them: their names (O, then B-/I- per label), the
transitions IOB2 allows, the best valid tag sequence (Viterbi), spans read back through `tags.decode`, and gold
BILUO tags as indices.

This file imports only its sibling runtime files (relatively), like every file of the runtime.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy

from .tags import decode, parse_tag

OUTSIDE = "O"


def tag_names(labels: Sequence[str]) -> List[str]:
    """The IOB2 tags for `labels`: O first, then B- and I- of each label in order."""
    return [OUTSIDE] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


def allowed_transitions(labels: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Which tags may start a sequence, and which may follow which, in IOB2 (I-X only after B-X or I-X)."""
    n_tags = 1 + 2 * len(labels)
    start = numpy.ones(n_tags, dtype=bool)
    follows = numpy.ones((n_tags, n_tags), dtype=bool)
    for k in range(len(labels)):
        inside = 2 + 2 * k
        start[inside] = False
        follows[:, inside] = False
        follows[inside - 1, inside] = follows[inside, inside] = True
    return start, follows


def _log_softmax(scores: numpy.ndarray) -> numpy.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=1, keepdims=True))


def decode_viterbi(scores: numpy.ndarray, start: numpy.ndarray, follows: numpy.ndarray) -> numpy.ndarray:
    """The valid IOB2 tag sequence with the highest total log-probability.

    scores (numpy.ndarray): (n_tokens, n_tags) logits or log-probabilities.
    start, follows: from `allowed_transitions`.
    RETURNS (numpy.ndarray): (n_tokens,) tag indices.
    """
    guess = scores.argmax(axis=1)
    if len(guess) == 0 or (start[guess[0]] and follows[guess[:-1], guess[1:]].all()):
        return guess  # the unconstrained best is valid, hence the best valid sequence
    logp = _log_softmax(scores.astype("float64"))
    blocked = numpy.where(follows, 0.0, -numpy.inf)
    best = logp[0] + numpy.where(start, 0.0, -numpy.inf)
    back = numpy.zeros(logp.shape, dtype="int64")
    for i in range(1, len(logp)):
        candidates = best[:, None] + blocked
        back[i] = candidates.argmax(axis=0)
        best = candidates.max(axis=0) + logp[i]
    path = numpy.empty(len(logp), dtype="int64")
    path[-1] = best.argmax()
    for i in range(len(logp) - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def tags_to_spans(tag_ids: Iterable[int], labels: Sequence[str]) -> List[Tuple[int, int, str]]:
    """Token spans (start, end, label) of an IOB2 tag-index sequence, read by `tags.decode`: a stray I-X starts
    an entity (seqeval's lenient reading), so no predicted tag is lost."""
    names = tag_names(labels)
    tags = [names[int(t)] for t in tag_ids]
    spans, _, _ = decode([parse_tag(t) for t in tags], tags)
    return spans


def biluo_to_tag_ids(tags: Sequence[Optional[str]], index: Dict[str, int]) -> Tuple[List[int], List[bool]]:
    """Gold BILUO tags (from `Example.get_aligned_ner`) as IOB2 tag indices and a mask of known tags.

    Missing or misaligned tokens (None, "-", "") are masked out. A label the component does not know raises.
    """
    ids, known = [], []
    for tag in tags:
        if tag is None or tag in ("-", ""):
            ids.append(0)
            known.append(False)
            continue
        if tag == OUTSIDE:
            ids.append(0)
        else:
            prefix, label = tag.split("-", 1)
            name = ("B-" if prefix in ("B", "U") else "I-") + label
            if name not in index:
                raise ValueError(
                    f"[bio_ner] the training data has entity label {label!r}, which this component was not "
                    f"initialized with ({', '.join(sorted({n[2:] for n in index if n != OUTSIDE}))}): "
                    f"initialize it on data with every label, or map the label at conversion (--map)"
                )
            ids.append(index[name])
        known.append(True)
    return ids, known
