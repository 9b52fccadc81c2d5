"""Parity check: spaCy's entity scorer and seqeval strict IOB2 must agree.

On well-formed gold, with predicted tokens equal to the gold tokens, spaCy's
`get_ner_prf` and seqeval `mode="strict", scheme=IOB2` count the same entities,
so their P/R/F agree. When they do not, each document whose counts differ is
listed with what explains it: misaligned tokens, missing annotation, ill-formed
gold, or a predicted entity that crosses a gold sentence boundary.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, Entities
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example

from ..corpus.docbin import doc_to_iob2
from ..pipeline.tags import spans_to_iob2

TOLERANCE = 1e-6
SEQEVAL_MODES = {
    "default": {},  # conlleval reading: an I- that does not continue begins an entity
    "strict": {"mode": "strict", "scheme": IOB2},
}
StrictEntity = Tuple[int, str, int, int]  # sequence index, label, start, end (exclusive)


def doc_name(doc: Doc, index: int) -> str:
    """The document's `file:line` from the converter, else its position.

    doc (Doc): A gold document.
    index (int): Its position in the corpus.
    RETURNS (str): e.g. "train.tsv:120" or "doc #3".
    """
    source = doc.user_data.get("source") if doc.user_data else None
    return str(source) if source else f"doc #{index}"


def gold_sequences(gold: Doc) -> List[List[str]]:
    """IOB2 tags per gold sentence (missing annotation reads as O); a doc
    without sentence boundaries is one sequence. Empty sentences are dropped."""
    return [[tag for _, tag in sent] for sent in doc_to_iob2(gold) if sent]


def predicted_tags(gold: Doc, pred: Doc) -> List[str]:
    """The predicted IOB2 tag of every gold token.

    When the predicted tokens are the gold tokens this is the prediction read
    token by token. Otherwise predicted entities are placed on the gold tokens
    by character offsets, and an entity that does not align exactly to gold
    tokens is left out (the parity report names the document).
    """
    if _same_tokens(gold, pred):
        return [tag for sent in doc_to_iob2(pred) for _, tag in sent]
    taken = [False] * len(gold)
    spans = []
    for ent in pred.ents:
        span = gold.char_span(ent.start_char, ent.end_char, alignment_mode="strict")
        if span is not None and not any(taken[span.start : span.end]):
            taken[span.start : span.end] = [True] * len(span)
            spans.append((span.start, span.end, ent.label_))
    return spans_to_iob2(len(gold), spans)


def doc_sequences(gold: Doc, pred: Doc) -> Tuple[List[List[str]], List[List[str]]]:
    """Gold and predicted IOB2 tags of a document, as one sequence each.

    One sequence per document, not per sentence: the pipeline predicts without
    sentence boundaries (as users run it), so a predicted entity may cross a
    gold sentence boundary; cutting the tags there would make seqeval count an
    entity spaCy's scorer does not. Per document, both count the same spans.
    RETURNS (Tuple[List[List[str]], List[List[str]]]): gold and predicted sequences, equal in shape.
    """
    gold_tags = [tag for seq in gold_sequences(gold) for tag in seq]
    if not gold_tags:
        return [], []
    return [gold_tags], [predicted_tags(gold, pred)]


def strict_entities(sequences: Sequence[Sequence[str]]) -> Set[StrictEntity]:
    """Entities as seqeval reads them in mode="strict", scheme=IOB2: an I- that
    does not continue an entity of its label begins none."""
    ents = Entities([list(s) for s in sequences], IOB2)
    return {e.to_tuple() for e in (ent for sent in ents.entities for ent in sent)}


def seqeval_prf(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], mode: str) -> Dict[str, float]:
    """Entity-level micro P/R/F from seqeval itself.

    mode (str): "default" (seqeval's default mode) or "strict" (mode="strict", scheme=IOB2).
    RETURNS (Dict[str, float]): p, r, f; 0.0 where undefined, and for no sequences.
    """
    if mode not in SEQEVAL_MODES:
        raise ValueError(f"seqeval mode {mode!r}: use one of {', '.join(SEQEVAL_MODES)}")
    gold, pred = [list(s) for s in gold_seqs], [list(s) for s in pred_seqs]
    if not gold:  # seqeval rejects an empty list of sequences
        return {"p": 0.0, "r": 0.0, "f": 0.0}
    kw = dict(SEQEVAL_MODES[mode], zero_division=0)
    return {
        "p": float(precision_score(gold, pred, **kw)),
        "r": float(recall_score(gold, pred, **kw)),
        "f": float(f1_score(gold, pred, **kw)),
    }


def seqeval_counts(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> Dict[str, int]:
    """tp, fp and fn of seqeval mode="strict", scheme=IOB2."""
    gold, pred = strict_entities(gold_seqs), strict_entities(pred_seqs)
    tp = len(gold & pred)
    return {"tp": tp, "fp": len(pred) - tp, "fn": len(gold) - tp}


def spacy_counts(example: Example) -> Dict[str, int]:
    """tp, fp and fn of one example, counted as `spacy.scorer.get_ner_prf`
    counts them (used to find the documents that differ)."""
    gold_doc, pred_doc = example.reference, example.predicted
    if not gold_doc.has_annotation("ENT_IOB"):
        return {"tp": 0, "fp": 0, "fn": 0}
    golds = {(e.label_, e.start, e.end) for e in gold_doc.ents}
    tp = fp = 0
    x2y = example.alignment.x2y
    for ent in pred_doc.ents:
        indices = x2y[ent.start : ent.end]
        if len(indices) and all(t.ent_iob != 0 for t in gold_doc[indices[0] : indices[-1] + 1]):
            key = (ent.label_, indices[0], indices[-1] + 1)
            if key in golds:
                tp += 1
                golds.remove(key)
            else:
                fp += 1
    return {"tp": tp, "fp": fp, "fn": len(golds)}


def prf(counts: Dict[str, int]) -> Dict[str, float]:
    """Precision, recall and F1 from tp/fp/fn (0.0 where undefined)."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def doc_reasons(gold: Doc, pred: Doc) -> List[str]:
    """What in this document can make spaCy and seqeval strict IOB2 disagree."""
    reasons = []
    if "".join(gold.text.split()) != "".join(pred.text.split()):  # spaCy aligns ignoring whitespace
        reasons.append("predicted text differs from gold text")
    elif not _same_tokens(gold, pred):
        i = next((k for k, (g, p) in enumerate(zip(gold, pred)) if g.text != p.text), min(len(gold), len(pred)))
        where = f"gold token {i} {gold[i].text!r}" if i < len(gold) else "the end"
        reasons.append(
            f"misaligned tokens: {len(pred)} predicted vs {len(gold)} gold tokens, first difference at {where}"
        )
    missing = [t for t in gold if t.ent_iob == 0]
    if missing:
        reasons.append(
            f"missing annotation: {len(missing)} gold tokens have no entity annotation "
            f"(first: token {missing[0].i} {missing[0].text!r})"
        )
    reasons.extend(ill_formed_gold(gold))
    if _same_tokens(gold, pred) and gold.has_annotation("SENT_START"):
        starts = {s.start for s in gold.sents}
        for ent in pred.ents:
            inner = [i for i in range(ent.start + 1, ent.end) if i in starts]
            if inner:
                reasons.append(
                    f"predicted entity {ent.text!r} ({ent.label_}) crosses the gold sentence boundary "
                    f"at token {inner[0]}"
                )
                break
    return reasons


def ill_formed_gold(gold: Doc) -> List[str]:
    """The first I- tag of each gold sentence that does not continue an entity of its label."""
    out, offset = [], 0
    for sent in doc_to_iob2(gold):
        prev = "O"
        for k, (text, tag) in enumerate(sent):
            if tag.startswith("I-") and prev[2:] != tag[2:]:
                where = "begins its sentence" if k == 0 else f"follows {prev}"
                out.append(f"ill-formed gold: {tag} at token {offset + k} {text!r} {where} and continues no entity")
                break
            prev = tag
        offset += len(sent)
    return out


@dataclass
class DocDifference:
    """A document whose counts differ between spaCy and seqeval strict IOB2."""

    document: str
    reasons: List[str]
    spacy: Optional[Dict[str, int]]  # None when spaCy's scorer cannot read the document
    seqeval: Dict[str, int]

    def __str__(self) -> str:
        spacy = "cannot score" if self.spacy is None else "tp/fp/fn {tp}/{fp}/{fn}".format(**self.spacy)
        seq = "tp/fp/fn {tp}/{fp}/{fn}".format(**self.seqeval)
        why = "; ".join(self.reasons) or "unexplained difference"
        return f"{self.document}: {why} (spaCy {spacy}; seqeval strict IOB2 {seq})"

    def to_dict(self) -> Dict:
        return {"document": self.document, "reasons": self.reasons, "spacy": self.spacy, "seqeval_strict": self.seqeval}


@dataclass
class ParityResult:
    """spaCy's scores, seqeval strict IOB2 scores, and the documents that differ."""

    spacy: Dict  # ents_p, ents_r, ents_f (None when nothing to score) and ents_per_type
    seqeval: Dict[str, float]  # p, r, f of mode="strict", scheme=IOB2
    differences: List[DocDifference] = field(default_factory=list)
    tolerance: float = TOLERANCE
    unscored: int = 0  # documents spaCy's scorer cannot read, left out of its scores

    @property
    def passed(self) -> bool:
        """Whether P/R/F agree within the tolerance and no document differs."""
        return not self.differences and self.totals_agree

    @property
    def totals_agree(self) -> bool:
        """Whether P, R and F agree within the tolerance (spaCy's None, nothing to score, reads as 0.0)."""
        return all(abs((self.spacy[f"ents_{k}"] or 0.0) - self.seqeval[k]) <= self.tolerance for k in "prf")

    def summary(self) -> str:
        s = " ".join(f"{k.upper()} {(self.spacy[f'ents_{k}'] or 0.0):.6f}" for k in "prf")
        q = " ".join(f"{k.upper()} {self.seqeval[k]:.6f}" for k in "prf")
        if self.passed:
            verdict = "agree"
        elif self.totals_agree:
            verdict = f"totals agree but {len(self.differences)} document(s) differ"
        else:
            verdict = f"DISAGREE, {len(self.differences)} document(s) differ"
        return f"spaCy {s} vs seqeval strict IOB2 {q}: {verdict} (tolerance {self.tolerance:g})"

    def to_dict(self) -> Dict:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance,
            "spacy": {k: self.spacy[f"ents_{k}"] for k in "prf"},
            "seqeval_strict": dict(self.seqeval),
            "unscored_by_spacy": self.unscored,
            "differences": [d.to_dict() for d in self.differences],
        }


def check_parity(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], *, tolerance: float = TOLERANCE) -> ParityResult:
    """Score predictions with spaCy's `get_ner_prf` and with seqeval
    mode="strict", scheme=IOB2, and list the documents whose counts differ.

    gold_docs (Sequence[Doc]): The gold documents.
    pred_docs (Sequence[Doc]): The predictions, one per gold document.
    tolerance (float): The largest difference in P, R or F that still agrees.
    RETURNS (ParityResult): Both scores, the verdict and the differing documents.
    """
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"{len(gold_docs)} gold documents but {len(pred_docs)} predicted documents")
    scorable: List[Example] = []
    differences: List[DocDifference] = []
    all_gold: List[List[str]] = []
    all_pred: List[List[str]] = []
    for i, (gold, pred) in enumerate(zip(gold_docs, pred_docs)):
        gold_seqs, pred_seqs = doc_sequences(gold, pred)
        all_gold += gold_seqs
        all_pred += pred_seqs
        seq = seqeval_counts(gold_seqs, pred_seqs)
        try:
            example = Example(pred, gold)
            spa: Optional[Dict[str, int]] = spacy_counts(example)
            scorable.append(example)
        except ValueError as e:  # E093 (I without B) in gold, or texts that cannot be aligned
            spa = None
            error = str(e).splitlines()[0]
        if spa != seq:
            reasons = doc_reasons(gold, pred)
            if spa is None:
                reasons.append(f"spaCy's scorer cannot read this document: {error}")
            differences.append(DocDifference(doc_name(gold, i), reasons, spa, seq))
    spacy_scores = get_ner_prf(scorable)
    return ParityResult(
        spacy=spacy_scores,
        seqeval=seqeval_prf(all_gold, all_pred, "strict"),
        differences=differences,
        tolerance=tolerance,
        unscored=len(gold_docs) - len(scorable),
    )


def _same_tokens(a: Doc, b: Doc) -> bool:
    return len(a) == len(b) and all(x.text == y.text for x, y in zip(a, b))
