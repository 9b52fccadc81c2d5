"""Evaluate a pipeline on gold corpora: spaCy's scorer, seqeval in both modes,
token accuracy, a per-label report, a token confusion table and raw-text mode.

Predictions are made on copies of the gold tokens (as `nlp.evaluate` does with
gold tokenization), so gold and predicted IOB2 tags line up token by token and
are cut into sequences at the gold sentence boundaries.
"""

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..corpus.docbin import read_docs
from .gold_tokens import token_copies
from .parity import check_parity, doc_sequences, gold_sequences, prf, seqeval_prf, strict_entities
from ..files.problems import InputError

Sequences = Sequence[Sequence[str]]
AVERAGES = ("micro avg", "macro avg", "weighted avg")


def check_tags(gold: Sequences, pred: Sequences) -> None:
    """Raise ValueError unless gold and pred are equally shaped lists of IOB2 tags."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sequences but {len(pred)} predicted sequences")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted tags")
        for tag in (*g, *p):
            if tag != "O" and (tag[:2] not in ("B-", "I-") or not tag[2:]):
                raise ValueError(f"sequence {i}: tag {tag!r} is not IOB2 (expected O, B-LABEL or I-LABEL)")


def label_report(gold: Sequences, pred: Sequences) -> Dict[str, Dict[str, float]]:
    """Precision, recall, F1 and support per label, with micro, macro and
    weighted averages, from entity counts in seqeval mode="strict", scheme=IOB2
    (the numbers of seqeval's `classification_report` in that mode, zero_division=0).

    RETURNS (Dict[str, Dict[str, float]]): label or average -> precision, recall, f1, support.
    """
    gold_ents, pred_ents = strict_entities(gold), strict_entities(pred)
    labels = sorted({e[1] for e in gold_ents} | {e[1] for e in pred_ents})
    report: Dict[str, Dict[str, float]] = {}
    totals: "Counter[str]" = Counter()
    for label in labels:
        g = {e for e in gold_ents if e[1] == label}
        p = {e for e in pred_ents if e[1] == label}
        counts = {"tp": len(g & p), "fp": len(p - g), "fn": len(g - p)}
        totals.update(counts)
        s = prf(counts)
        report[label] = {"precision": s["p"], "recall": s["r"], "f1": s["f"], "support": len(g), **counts}
    support = len(gold_ents)
    micro = prf({k: totals[k] for k in ("tp", "fp", "fn")})
    report["micro avg"] = {"precision": micro["p"], "recall": micro["r"], "f1": micro["f"], "support": support}
    rows = [report[label] for label in labels]
    for name, weights in (("macro avg", [1] * len(rows)), ("weighted avg", [r["support"] for r in rows])):
        total = sum(weights)
        report[name] = {
            k: (sum(w * r[k] for w, r in zip(weights, rows)) / total if total else 0.0)
            for k in ("precision", "recall", "f1")
        }
        report[name]["support"] = support
    return report


def confusion_table(gold: Sequences, pred: Sequences) -> Dict[str, Dict[str, int]]:
    """Token counts of gold tag (rows) against predicted tag (columns) over O
    and B-X, I-X for every label seen in either.

    RETURNS (Dict[str, Dict[str, int]]): gold tag -> predicted tag -> count, zeros included.
    """
    pairs = Counter((g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    labels = sorted({t[2:] for pair in pairs for t in pair if t != "O"})
    tags = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in "BI"]
    return {g: {p: pairs.get((g, p), 0) for p in tags} for g in tags}


def score_tags(gold: Sequences, pred: Sequences) -> Dict:
    """Every tag-level figure from gold and predicted IOB2 sequences.

    gold (Sequence[Sequence[str]]): Gold tags, one sequence per sentence.
    pred (Sequence[Sequence[str]]): Predicted tags, shaped as gold.
    RETURNS (Dict): seqeval_default (seqeval's default mode) and seqeval_strict
        (mode="strict", scheme=IOB2) P/R/F, token_accuracy, per_label, confusion,
        and the numbers of sentences, tokens and gold entities.
    """
    check_tags(gold, pred)
    n_tokens = sum(len(s) for s in gold)
    correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    return {
        "sentences": len(gold),
        "tokens": n_tokens,
        "gold_entities": len(strict_entities(gold)),
        "seqeval_default": seqeval_prf(gold, pred, "default"),
        "seqeval_strict": seqeval_prf(gold, pred, "strict"),
        "token_accuracy": correct / n_tokens if n_tokens else 0.0,
        "per_label": label_report(gold, pred),
        "confusion": confusion_table(gold, pred),
    }


def predict(nlp: Language, gold_docs: Iterable[Doc], *, batch_size: int = 64) -> List[Doc]:
    """Run the pipeline's components over copies of the gold tokens (`token_copies`)."""
    return list(nlp.pipe(token_copies(nlp.vocab, gold_docs), batch_size=batch_size))


def raw_text_scores(nlp: Language, gold_docs: Sequence[Doc], *, batch_size: int = 64) -> Dict:
    """Re-tokenise each gold sentence's text with the whole pipeline and
    compare entities by character offsets, (start_char, end_char, label) exact.
    Gold entities are read as seqeval mode="strict", scheme=IOB2 reads them.

    RETURNS (Dict): p, r, f, tp, gold and predicted entity counts, and
        misaligned_gold_entities: gold entities whose edges are not token edges
        of the pipeline's tokenization (they cannot be predicted exactly).
    """
    texts: List[str] = []
    gold_sets: List[set] = []
    for doc in gold_docs:
        sents = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        for sent, tags in zip([s for s in sents if len(s)], gold_sequences(doc)):
            base = sent.start_char
            ents = set()
            for _, label, start, end in strict_entities([tags]):
                span = sent[start:end]
                ents.add((span.start_char - base, span.end_char - base, label))
            texts.append(sent.text)
            gold_sets.append(ents)
    tp = n_pred = misaligned = 0
    for pred, gold in zip(nlp.pipe(texts, batch_size=batch_size), gold_sets):
        found = {(e.start_char, e.end_char, e.label_) for e in pred.ents}
        tp += len(found & gold)
        n_pred += len(found)
        misaligned += sum(pred.char_span(s, e, alignment_mode="strict") is None for s, e, _ in gold)
    n_gold = sum(len(g) for g in gold_sets)
    scores = prf({"tp": tp, "fp": n_pred - tp, "fn": n_gold - tp})
    return {
        **scores,
        "sentences": len(texts),
        "tp": tp,
        "gold_entities": n_gold,
        "predicted_entities": n_pred,
        "misaligned_gold_entities": misaligned,
    }


def _in_context(doc: Doc, start: int, end: int, width: int = 60) -> str:
    """The span's sentence (or `width` characters either side) with the span in [brackets], on one line."""
    span = doc[start:end]
    sent = span.sent if doc.has_annotation("SENT_START") else doc[:]
    left = doc.text[max(sent.start_char, span.start_char - width) : span.start_char]
    right = doc.text[span.end_char : min(sent.end_char, span.end_char + width)]
    return " ".join(f"{left}[{span.text}]{right}".split())


def frequent_errors(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], *, top: int = 15) -> Dict[str, List[Dict]]:
    """The most frequent false positives and false negatives (exact entity match), with one context each.

    A false positive that overlaps a gold entity, or a false negative that a prediction overlaps, is marked
    `boundary` (the span's edges or label are off) rather than `spurious` / `missed`.
    RETURNS (Dict[str, List[Dict]]): false_positives and false_negatives, each a list of
        {text, label, count, kind, context}, most frequent first.
    """
    found: Dict[str, Dict[Tuple[str, str], Dict]] = {"false_positives": {}, "false_negatives": {}}
    for gold, pred in zip(gold_docs, pred_docs):
        try:
            g = {(e.start, e.end, e.label_) for e in gold.ents}
        except ValueError:  # ill-formed gold (an I- without its B-): the parity section lists it
            continue
        p = {(e.start, e.end, e.label_) for e in pred.ents}
        for kind, mine, other, doc in (("false_positives", p - g, g, pred), ("false_negatives", g - p, p, gold)):
            for start, end, label in sorted(mine):
                overlaps = any(s < end and start < e for s, e, _ in other)
                key = (doc[start:end].text.casefold(), label)
                entry = found[kind].setdefault(
                    key,
                    {
                        "text": doc[start:end].text,
                        "label": label,
                        "count": 0,
                        "boundary": 0,
                        "context": _in_context(gold, start, end),
                    },
                )
                entry["count"] += 1
                entry["boundary"] += overlaps
    out = {}
    for kind, entries in found.items():
        ranked = sorted(entries.values(), key=lambda e: (-e["count"], e["text"].casefold()))[:top]
        out[kind] = [
            {
                **e,
                "kind": (
                    "boundary"
                    if e["boundary"] == e["count"]
                    else "spurious"
                    if kind == "false_positives" and not e["boundary"]
                    else "missed"
                    if not e["boundary"]
                    else "mixed"
                ),
            }
            for e in ranked
        ]
    return out


def evaluate_docs(nlp: Language, gold_docs: Sequence[Doc], *, batch_size: int = 64, raw_text: bool = True) -> Dict:
    """Evaluate a pipeline on gold documents.

    nlp (Language): The loaded pipeline.
    gold_docs (Sequence[Doc]): Gold documents with entity annotation.
    batch_size (int): Documents per `nlp.pipe` batch.
    raw_text (bool): Also score raw-text mode (the pipeline's own tokenization).
    RETURNS (Dict): JSON-serialisable figures: documents, spacy (ents_p/r/f,
        ents_per_type), the tag-level figures of `score_tags`, raw_text and parity.
    """
    gold_docs = list(gold_docs)
    pred_docs = predict(nlp, gold_docs, batch_size=batch_size)
    parity = check_parity(gold_docs, pred_docs)
    gold_seqs: List[List[str]] = []
    pred_seqs: List[List[str]] = []
    for gold, pred in zip(gold_docs, pred_docs):
        g, p = doc_sequences(gold, pred)
        gold_seqs += g
        pred_seqs += p
    result = {"documents": len(gold_docs), "spacy": parity.spacy, **score_tags(gold_seqs, pred_seqs)}
    result["sentences"] = sum(len(gold_sequences(doc)) for doc in gold_docs)
    result["raw_text"] = raw_text_scores(nlp, gold_docs, batch_size=batch_size) if raw_text else None
    result["parity"] = parity.to_dict()
    result["parity"]["summary"] = parity.summary()
    result["parity"]["lines"] = [str(d) for d in parity.differences]
    result["errors"] = frequent_errors(gold_docs, pred_docs)
    return result


def evaluate_corpus(nlp: Language, paths: Union[Path, Sequence[Path]], *, batch_size: int = 64) -> Dict:
    """Evaluate a pipeline on the gold documents of DocBin (.spacy) files; see `evaluate_docs`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    docs = list(read_docs(paths, nlp.vocab))
    if not docs:
        raise InputError(paths[0] if len(paths) == 1 else None, None, "no documents to evaluate")
    return evaluate_docs(nlp, docs, batch_size=batch_size)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, cut to 160 characters."""
    text = text.replace("|", "\\|")
    return text if len(text) <= 160 else text[:159] + "…"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def confusion_markdown(table: Dict[str, Dict[str, int]]) -> str:
    """The confusion table as Markdown: gold tags in rows, predicted in columns."""
    tags = list(table)
    lines = ["| gold \\ predicted | " + " | ".join(tags) + " |", "| --- |" + " ---: |" * len(tags)]
    lines += [f"| {g} | " + " | ".join(str(table[g][p]) for p in tags) + " |" for g in tags]
    return "\n".join(lines)


def split_markdown(name: str, r: Dict) -> str:
    """The report section of one evaluated split."""
    sp, d, s = r["spacy"], r["seqeval_default"], r["seqeval_strict"]
    unscored = r["parity"].get("unscored_by_spacy", 0)
    spacy_name = "spaCy (`get_ner_prf`)" + (f"; {unscored} document(s) it cannot read left out" if unscored else "")
    out = [
        f"## {name}",
        "",
        f"{r['documents']} documents, {r['sentences']} sentences, {r['tokens']} tokens, "
        f'{r["gold_entities"]} gold entities (seqeval mode="strict", scheme=IOB2).',
        "",
        "### Entity scores (%)",
        "",
        "| scorer | P | R | F |",
        "| --- | ---: | ---: | ---: |",
        f"| {spacy_name} | {_pct(sp['ents_p'])} | {_pct(sp['ents_r'])} | {_pct(sp['ents_f'])} |",
        f"| seqeval default mode | {_pct(d['p'])} | {_pct(d['r'])} | {_pct(d['f'])} |",
        f'| seqeval mode="strict", scheme=IOB2 | {_pct(s["p"])} | {_pct(s["r"])} | {_pct(s["f"])} |',
        "",
        f"Token accuracy of the IOB2 tags: {_pct(r['token_accuracy'])}%.",
        "",
        '### Per-label report (seqeval mode="strict", scheme=IOB2; %)',
        "",
        "| label | precision | recall | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, row in r["per_label"].items():
        shown = f"*{label}*" if label in AVERAGES else label
        out.append(
            f"| {shown} | {_pct(row['precision'])} | {_pct(row['recall'])} | {_pct(row['f1'])} | {row['support']} |"
        )
    out += [
        "",
        "### Token confusion (gold rows, predicted columns)",
        "",
        confusion_markdown(r["confusion"]),
        "",
        f"![confusion {name}](confusion_{name}.png)",
        "",
    ]
    raw = r.get("raw_text")
    if raw:
        out += [
            "### Raw-text mode (pipeline tokenization, exact character offsets; %)",
            "",
            "| P | R | F | gold entities | predicted | gold entities not on token edges |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {_pct(raw['p'])} | {_pct(raw['r'])} | {_pct(raw['f'])} | {raw['gold_entities']} | "
            f"{raw['predicted_entities']} | {raw['misaligned_gold_entities']} |",
            "",
        ]
    errors = r.get("errors")
    if errors:
        out += ["### Most frequent errors (exact entity match; `boundary`: a gold and a predicted span overlap)", ""]
        for kind, title in (
            ("false_positives", "False positives (predicted, not in gold)"),
            ("false_negatives", "False negatives (gold, not predicted)"),
        ):
            out += [f"{title}:", "", "| term | label | count | kind | in context |", "| --- | --- | ---: | --- | --- |"]
            out += [
                f"| {_cell(e['text'])} | {e['label']} | {e['count']} | {e['kind']} | {_cell(e['context'])} |"
                for e in errors[kind]
            ] or ["| - | | | | |"]
            out.append("")
    par = r["parity"]
    out += [
        '### Parity: spaCy vs seqeval mode="strict", scheme=IOB2',
        "",
        ("PASSED: " if par["passed"] else "FAILED: ") + par["summary"],
        "",
    ]
    out += [f"- {line}" for line in par["lines"]]
    return "\n".join(out).rstrip() + "\n"


def render_report(results: Dict[str, Dict], *, model: str = "", training_curve: bool = False) -> str:
    """The Markdown report of every evaluated split.

    results (Dict[str, Dict]): split name -> result of `evaluate_docs`.
    model (str): The pipeline's path, for the title.
    training_curve (bool): Whether training_curve.png was written beside the report.
    """
    out = [f"# Evaluation{f' of `{model}`' if model else ''}", ""]
    if training_curve:
        out += ["![training curve](training_curve.png)", ""]
    out += [split_markdown(name, r) for name, r in results.items()]
    return "\n".join(out)


def write_reports(
    results: Dict[str, Dict], output_dir: Path, *, model: str = "", training_curve: bool = False
) -> List[Path]:
    """Write metrics.json and report.md atomically.

    RETURNS (List[Path]): The files written.
    """
    import srsly

    from ..files.atomic import write_text_atomic

    output_dir = Path(output_dir)
    metrics, report = output_dir / "metrics.json", output_dir / "report.md"
    write_text_atomic(metrics, srsly.json_dumps(results, indent=2) + "\n")
    write_text_atomic(report, render_report(results, model=model, training_curve=training_curve))
    return [metrics, report]


def summary_line(name: str, r: Dict) -> Tuple[str, bool]:
    """One line per split for the console, and whether parity passed."""
    raw = r.get("raw_text") or {}
    f = r["spacy"]["ents_f"]
    parts = [
        f"{name}: {r['documents']} docs",
        f"spaCy F {_pct(f)}",
        f"seqeval strict F {_pct(r['seqeval_strict']['f'])}",
        f"default F {_pct(r['seqeval_default']['f'])}",
        f"token acc {_pct(r['token_accuracy'])}",
    ]
    if raw:
        parts.append(f"raw-text F {_pct(raw['f'])} ({raw['misaligned_gold_entities']} gold entities off token edges)")
    passed = r["parity"]["passed"]
    parts.append("parity ok" if passed else "parity FAILED")
    return ", ".join(parts), passed
