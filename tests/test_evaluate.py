"""Evaluation: seqeval in both modes, parity with spaCy's scorer, reports, raw-text mode, plots and the CLI."""

import json

import numpy
import pytest
import spacy
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import accuracy_score, classification_report, f1_score
from seqeval.scheme import IOB2
from spacy.attrs import ENT_IOB, ENT_TYPE
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from typer.testing import CliRunner

from tech_ner.corpus.docbin import DOCBIN_ATTRS
from tech_ner.evaluation.evaluate import (
    confusion_markdown,
    confusion_table,
    evaluate_docs,
    label_report,
    raw_text_scores,
    score_tags,
)
from tech_ner.commands.evaluate import evaluate_command
from tech_ner.evaluation.gold_tokens import token_copies
from tech_ner.evaluation.parity import check_parity
from tech_ner.evaluation.plots import plot_confusion, plot_training_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LABELS = ["TECH", "LIB", "m1"]


# --- builders -------------------------------------------------------------


def make_doc(vocab, sents, *, source=None, spaces=True):
    """A gold Doc from sentences of (word, tag); sentence starts set; well-formed tags only."""
    words = [w for s in sents for w, _ in s]
    tags = [t for s in sents for _, t in s]
    starts = [k == 0 for s in sents for k in range(len(s))]
    doc = Doc(vocab, words=words, spaces=[spaces] * len(words), sent_starts=starts, ents=tags)
    if source:
        doc.user_data["source"] = source
    return doc


def raw_doc(vocab, words, iob, *, source=None):
    """A Doc with ENT_IOB/ENT_TYPE set verbatim (ill-formed or missing annotation allowed).

    iob: tags like "O", "B-X", "I-X", or "" for missing annotation.
    """
    doc = Doc(vocab, words=words)
    codes = {"I": 1, "O": 2, "B": 3, "": 0}
    rows = [[codes[t[:1]], vocab.strings.add(t[2:]) if t[:2] in ("B-", "I-") else 0] for t in iob]
    doc.from_array([ENT_IOB, ENT_TYPE], numpy.array(rows, dtype="uint64"))
    if source:
        doc.user_data["source"] = source
    return doc


def pred_doc(vocab, gold, tags):
    """A prediction on the gold tokens (no sentence boundaries)."""
    return Doc(vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold], ents=tags)


@st.composite
def iob2_tags(draw, n):
    tags = []
    while len(tags) < n:
        if draw(st.booleans()):
            tags.append("O")
            continue
        label = draw(st.sampled_from(LABELS))
        length = draw(st.integers(1, n - len(tags)))
        tags += ["B-" + label] + ["I-" + label] * (length - 1)
    return tags


@st.composite
def doc_pairs(draw):
    """Per document: sentences of (gold tags, predicted tags), both well-formed IOB2."""
    docs = []
    for _ in range(draw(st.integers(1, 4))):
        sents = []
        for _ in range(draw(st.integers(1, 3))):
            n = draw(st.integers(1, 8))
            sents.append((draw(iob2_tags(n)), draw(iob2_tags(n))))
        docs.append(sents)
    return docs


ANY_TAG = st.sampled_from(["O", "O", "B-TECH", "I-TECH", "B-LIB", "I-LIB"])


@st.composite
def any_tag_pairs(draw):
    """Gold and predicted sequences of any tags (ill-formed I- starts included)."""
    lengths = draw(st.lists(st.integers(0, 8), min_size=1, max_size=5))
    gold = [draw(st.lists(ANY_TAG, min_size=n, max_size=n)) for n in lengths]
    pred = [draw(st.lists(ANY_TAG, min_size=n, max_size=n)) for n in lengths]
    return gold, pred


@pytest.fixture
def nlp():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [
            {"label": "TECH", "pattern": "Rust"},
            {"label": "TECH", "pattern": "Python"},
            {"label": "TECH", "pattern": [{"LOWER": "github"}, {"LOWER": "actions"}]},
        ]
    )
    return nlp


def sentences(text_with_tags):
    """'We|O use|O Rust|B-TECH' -> [(word, tag), ...]"""
    return [tuple(item.rsplit("|", 1)) for item in text_with_tags.split()]


GOLD_SENTS = [
    [
        sentences("We|O rewrote|O the|O parser|O in|O Rust|B-TECH and|O kept|O the|O Python|B-TECH bindings|O .|O"),
        sentences("She|O moved|O the|O jobs|O to|O GitHub|B-TECH Actions|I-TECH .|O"),
    ],
    [sentences("A|O python|O swallowed|O the|O rabbit|O .|O"), sentences("Install|O Node.js|B-TECH first|O .|O")],
]


def write_gold(path, vocab, docs):
    db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
    for d in docs:
        db.add(d)
    db.to_disk(path)
    return path


# --- parity ---------------------------------------------------------------


@SETTINGS
@given(docs=doc_pairs())
def test_parity_spacy_scorer_and_seqeval_strict_agree(docs):
    vocab = spacy.blank("en").vocab
    golds, preds, gold_seqs, pred_seqs = [], [], [], []
    for i, sents in enumerate(docs):
        words = [[f"w{i}_{k}_{j}" for j in range(len(g))] for k, (g, _) in enumerate(sents)]
        gold = make_doc(vocab, [list(zip(w, g)) for w, (g, _) in zip(words, sents)], source=f"gen.tsv:{i}")
        golds.append(gold)
        preds.append(pred_doc(vocab, gold, [t for _, p in sents for t in p]))
        gold_seqs += [g for g, _ in sents]
        pred_seqs += [p for _, p in sents]
    spacy_scores = get_ner_prf([Example(p, g) for p, g in zip(preds, golds)])
    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    # spaCy reports None where there is nothing to score; seqeval (zero_division=0) reports 0.0
    assert abs((spacy_scores["ents_f"] or 0.0) - f1_score(gold_seqs, pred_seqs, **strict)) <= 1e-6
    result = check_parity(golds, preds)
    assert result.passed, [str(d) for d in result.differences]
    assert result.differences == []
    for k in "prf":
        assert abs((result.spacy[f"ents_{k}"] or 0.0) - result.seqeval[k]) <= 1e-6
    # per label too: spaCy's ents_per_type against the report computed from seqeval strict IOB2 counts
    report = label_report(gold_seqs, pred_seqs)
    for label, prf in (spacy_scores["ents_per_type"] or {}).items():
        assert abs(prf["f"] - report[label]["f1"]) <= 1e-6


def test_parity_lists_ill_formed_gold_with_source(nlp):
    vocab = nlp.vocab
    good = make_doc(vocab, [sentences("We|O use|O Rust|B-TECH .|O")], source="gold.tsv:1")
    # "O I-TECH": an I- that continues nothing; spaCy cannot read it (E093), seqeval strict IOB2 drops it
    bad = raw_doc(vocab, ["They", "use", "Rust", "."], ["O", "O", "I-TECH", "O"], source="gold.tsv:7")
    preds = [pred_doc(vocab, good, ["O", "O", "B-TECH", "O"]), pred_doc(vocab, bad, ["O", "O", "B-TECH", "O"])]
    result = check_parity([good, bad], preds)
    assert not result.passed
    assert [d.document for d in result.differences] == ["gold.tsv:7"]
    line = str(result.differences[0])
    assert line.startswith("gold.tsv:7: ill-formed gold: I-TECH at token 2 'Rust' follows O")
    assert "spaCy's scorer cannot read this document" in line


def test_parity_ill_formed_label_switch_differs_in_counts(nlp):
    vocab = nlp.vocab
    # B-LIB I-TECH: spaCy reads one two-token LIB entity, seqeval strict IOB2 a one-token LIB
    gold = raw_doc(vocab, ["numpy", "arrays", "rock"], ["B-LIB", "I-TECH", "O"])
    pred = pred_doc(vocab, gold, ["B-LIB", "O", "O"])
    result = check_parity([gold], [pred])
    assert not result.passed
    diff = result.differences[0]
    assert diff.document == "doc #0"
    assert diff.spacy == {"tp": 0, "fp": 1, "fn": 1} and diff.seqeval == {"tp": 1, "fp": 0, "fn": 0}
    assert "ill-formed gold: I-TECH at token 1 'arrays' follows B-LIB" in str(diff)


def test_parity_lists_missing_annotation(nlp):
    vocab = nlp.vocab
    gold = raw_doc(vocab, ["I", "like", "Rust"], ["O", "", "B-TECH"], source="part.tsv:3")
    pred = pred_doc(vocab, gold, ["O", "B-TECH", "B-TECH"])  # spaCy ignores the guess on a missing token
    result = check_parity([gold], [pred])
    assert not result.passed
    assert "part.tsv:3: missing annotation: 1 gold tokens have no entity annotation (first: token 1 'like')" in str(
        result.differences[0]
    )


def test_parity_lists_misaligned_tokens(nlp):
    vocab = nlp.vocab
    gold = make_doc(vocab, [sentences("New|B-TECH York|O rocks|O")])
    pred = Doc(
        vocab, words=["Ne", "w", "York", "rocks"], spaces=[False, True, True, False], ents=["B-TECH", "O", "O", "O"]
    )
    result = check_parity([gold], [pred])
    assert not result.passed
    assert "misaligned tokens: 4 predicted vs 3 gold tokens, first difference at gold token 0 'New'" in str(
        result.differences[0]
    )


def test_parity_rejects_unequal_lengths(nlp):
    gold = make_doc(nlp.vocab, [sentences("a|O")])
    with pytest.raises(ValueError, match="1 gold documents but 0 predicted documents"):
        check_parity([gold], [])


# --- seqeval modes, report and confusion ------------------------------------


def test_seqeval_i_start_is_an_entity_in_default_mode_only():
    gold, pred = [["B-ORG", "I-ORG"]], [["I-ORG", "I-ORG"]]
    # seqeval itself: default mode reads I-ORG I-ORG as one ORG entity; mode="strict", scheme=IOB2 reads none
    assert f1_score(gold, pred) == 1.0
    assert f1_score(gold, pred, mode="strict", scheme=IOB2) == 0.0
    scores = score_tags(gold, pred)
    assert scores["seqeval_default"]["f"] == 1.0  # default mode
    assert scores["seqeval_strict"]["f"] == 0.0  # mode="strict", scheme=IOB2
    assert scores["per_label"]["ORG"]["f1"] == 0.0  # the report follows strict IOB2


HAND_GOLD = [["B-TECH", "I-TECH", "O", "B-LIB"], ["O", "B-TECH"]]
HAND_PRED = [["B-TECH", "I-TECH", "O", "O"], ["B-LIB", "B-TECH"]]


def test_label_report_by_hand():
    report = label_report(HAND_GOLD, HAND_PRED)  # seqeval mode="strict", scheme=IOB2 counts
    assert report["TECH"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "tp": 2, "fp": 0, "fn": 0}
    assert report["LIB"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "tp": 0, "fp": 1, "fn": 1}
    assert report["micro avg"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert report["macro avg"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3})
    assert report["weighted avg"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})


def test_confusion_table_by_hand():
    table = confusion_table(HAND_GOLD, HAND_PRED)
    assert list(table) == ["O", "B-LIB", "I-LIB", "B-TECH", "I-TECH"]
    nonzero = {(g, p): n for g, row in table.items() for p, n in row.items() if n}
    assert nonzero == {
        ("O", "O"): 1,
        ("O", "B-LIB"): 1,
        ("B-LIB", "O"): 1,
        ("B-TECH", "B-TECH"): 2,
        ("I-TECH", "I-TECH"): 1,
    }
    md = confusion_markdown(table)
    assert md.splitlines()[0] == "| gold \\ predicted | O | B-LIB | I-LIB | B-TECH | I-TECH |"
    assert "| B-LIB | 1 | 0 | 0 | 0 | 0 |" in md
    assert score_tags(HAND_GOLD, HAND_PRED)["token_accuracy"] == pytest.approx(4 / 6)


@SETTINGS
@given(pair=any_tag_pairs())
def test_label_report_matches_seqeval_classification_report(pair):
    gold, pred = pair
    ours = label_report(gold, pred)
    assert score_tags(gold, pred)["token_accuracy"] == pytest.approx(accuracy_score(gold, pred) if any(gold) else 0.0)
    names = [k for k in ours if not k.endswith(" avg")]
    if not names:  # seqeval's report cannot be drawn without labels
        return
    theirs = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    assert set(theirs) == set(ours)
    for key, row in theirs.items():
        assert ours[key]["precision"] == pytest.approx(row["precision"])
        assert ours[key]["recall"] == pytest.approx(row["recall"])
        assert ours[key]["f1"] == pytest.approx(row["f1-score"])
        assert ours[key]["support"] == row["support"]


@pytest.mark.parametrize(
    "gold,pred,message",
    [
        ([["O"]], [], "1 gold sequences but 0 predicted sequences"),
        ([["O", "O"]], [["O"]], "sequence 0: 2 gold tags but 1 predicted tags"),
        ([["E-TECH"]], [["O"]], "tag 'E-TECH' is not IOB2"),
        ([["O"]], [["B-"]], "tag 'B-' is not IOB2"),
    ],
)
def test_score_tags_rejects_bad_input(gold, pred, message):
    with pytest.raises(ValueError, match=message):
        score_tags(gold, pred)


# --- pipeline evaluation and raw-text mode ---------------------------------


def test_evaluate_docs_with_a_ruler(nlp):
    docs = [make_doc(nlp.vocab, sents, source=f"gold.tsv:{i}") for i, sents in enumerate(GOLD_SENTS)]
    r = evaluate_docs(nlp, docs)
    assert r["parity"]["passed"]
    assert r["documents"] == 2 and r["sentences"] == 4 and r["gold_entities"] == 4
    assert r["spacy"]["ents_p"] == pytest.approx(1.0) and r["spacy"]["ents_r"] == pytest.approx(0.75)
    assert r["seqeval_strict"]["r"] == pytest.approx(0.75) and r["seqeval_default"]["r"] == pytest.approx(0.75)
    assert r["per_label"]["TECH"]["support"] == 4
    assert r["confusion"]["B-TECH"]["O"] == 1
    assert r["raw_text"]["f"] == pytest.approx(r["seqeval_strict"]["f"])
    json.dumps(r)  # JSON-serialisable


def test_token_copies_keep_the_gold_tokens_and_nothing_else(nlp):
    gold = make_doc(nlp.vocab, GOLD_SENTS[0], source="gold.tsv:1")
    gold_nospace = make_doc(nlp.vocab, GOLD_SENTS[1], spaces=False)
    copies = token_copies(nlp.vocab, [gold, gold_nospace])
    assert not isinstance(copies, list)  # read one by one, as nlp.pipe reads them
    copies = list(copies)
    assert len(copies) == 2
    for copy, doc in zip(copies, [gold, gold_nospace]):
        assert copy is not doc and copy.vocab is nlp.vocab
        assert [(t.text, t.whitespace_) for t in copy] == [(t.text, t.whitespace_) for t in doc]
        assert copy.text == doc.text
        assert not copy.ents and not copy.has_annotation("ENT_IOB")
        assert not copy.has_annotation("SENT_START") and not copy.user_data


def test_raw_text_counts_gold_entity_off_token_edges(nlp):
    # gold marks "Py" in "Python" as the entity; the tokenizer sees one token "Python"
    gold = Doc(
        nlp.vocab,
        words=["We", "like", "Py", "thon", "."],
        spaces=[True, True, False, False, False],
        ents=["O", "O", "B-TECH", "O", "O"],
    )
    raw = raw_text_scores(nlp, [gold])
    assert raw["misaligned_gold_entities"] == 1
    assert (raw["gold_entities"], raw["predicted_entities"], raw["tp"]) == (1, 1, 0)
    assert raw["f"] == 0.0


# --- plots -----------------------------------------------------------------


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 8 and data[:8] == PNG_SIGNATURE


LOG_LINES = [
    {
        "epoch": 0,
        "step": 0,
        "losses": {"transformer": 10.0, "ner": 50.0},
        "scores": {"ents_f": 0.0, "ents_p": 0.0},
        "score": 0.0,
    },
    {
        "epoch": 0,
        "step": 200,
        "losses": {"transformer": 965.9, "ner": 988.5},
        "scores": {"ents_f": 0.71, "ents_p": 0.7, "ents_r": 0.72, "sents_f": 0.59},
        "score": 0.71,
    },
    {"epoch": 1, "step": 400, "losses": {"transformer": 300.2, "ner": 250.0}, "scores": {"ents_f": 0.8}, "score": 0.8},
]


def test_plots_are_png(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps(x) + "\n" for x in LOG_LINES), encoding="utf-8")
    assert plot_training_curve(log, tmp_path / "curve.png") is None
    assert_png(tmp_path / "curve.png")
    plot_confusion(confusion_table(HAND_GOLD, HAND_PRED), tmp_path / "conf.png", title="hand")
    assert_png(tmp_path / "conf.png")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "no such training log"),
        ("", "the training log is empty"),
        ('{"step": 1}\nnot json\n', ":2: not a JSON line"),
    ],
)
def test_training_curve_skipped_with_a_message(tmp_path, content, message):
    log = tmp_path / "train.jsonl"
    if content is not None:
        log.write_text(content, encoding="utf-8")
    assert message in plot_training_curve(log, tmp_path / "curve.png")
    assert not (tmp_path / "curve.png").exists()
    assert plot_training_curve(None, tmp_path / "curve.png") == "no training log given"


# --- CLI -------------------------------------------------------------------


@pytest.fixture
def cli_app():
    app = typer.Typer()
    app.command()(evaluate_command)
    return app


@pytest.fixture
def model_dir(nlp, tmp_path):
    nlp.to_disk(tmp_path / "model")
    return tmp_path / "model"


def test_cli_writes_everything_and_exits_0(cli_app, model_dir, nlp, tmp_path):
    train = write_gold(tmp_path / "train.spacy", nlp.vocab, [make_doc(nlp.vocab, GOLD_SENTS[0], source="t.tsv:1")])
    test = write_gold(tmp_path / "test.spacy", nlp.vocab, [make_doc(nlp.vocab, GOLD_SENTS[1], source="t.tsv:9")])
    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps(x) + "\n" for x in LOG_LINES), encoding="utf-8")
    out = tmp_path / "metrics"
    res = CliRunner().invoke(
        cli_app,
        [str(model_dir), str(train), str(test), "--output-dir", str(out), "--names", "train,test", "--log", str(log)],
    )
    assert res.exit_code == 0, res.output
    for name in ("metrics.json", "report.md"):
        assert (out / name).stat().st_size > 0
    for name in ("training_curve.png", "confusion_train.png", "confusion_test.png"):
        assert_png(out / name)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) == {"train", "test"}
    assert metrics["train"]["parity"]["passed"] and metrics["train"]["spacy"]["ents_f"] == pytest.approx(1.0)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert 'seqeval mode="strict", scheme=IOB2' in report and "PASSED" in report
    assert "train: 1 docs, spaCy F 100.00" in res.output and "parity ok" in res.output


def test_cli_exits_1_and_lists_parity_failures(cli_app, model_dir, nlp, tmp_path):
    bad = raw_doc(nlp.vocab, ["They", "use", "Rust", "."], ["O", "O", "I-TECH", "O"], source="gold.tsv:7")
    data = write_gold(tmp_path / "dev.spacy", nlp.vocab, [make_doc(nlp.vocab, GOLD_SENTS[0], source="gold.tsv:1"), bad])
    out = tmp_path / "metrics"
    res = CliRunner().invoke(cli_app, [str(model_dir), str(data), "-o", str(out)])
    assert res.exit_code == 1
    assert "parity failed on dev" in res.output
    assert "  - gold.tsv:7: ill-formed gold: I-TECH at token 2 'Rust' follows O" in res.output
    assert "gold.tsv:1" not in res.output.split("parity failed on dev")[1]
    assert "note: training curve skipped: no training log given" in res.output
    assert (out / "metrics.json").exists() and (out / "report.md").exists() and (out / "confusion_dev.png").exists()
    assert "FAILED" in (out / "report.md").read_text(encoding="utf-8")


def test_cli_names_must_match_files(cli_app, model_dir, nlp, tmp_path):
    data = write_gold(tmp_path / "dev.spacy", nlp.vocab, [make_doc(nlp.vocab, GOLD_SENTS[0])])
    res = CliRunner().invoke(cli_app, [str(model_dir), str(data), "--names", "train,test", "-o", str(tmp_path / "m")])
    assert res.exit_code == 1
    assert "error: --names 'train,test': give one name per data file (1 files)" in res.output


def test_predicted_entity_across_gold_sentences_keeps_parity():
    """The pipeline predicts without sentence boundaries, so an entity may cross one: both scorers count it once."""
    from spacy.tokens import Doc, Span

    from tech_ner.evaluation.parity import check_parity

    vocab = spacy.blank("en").vocab
    words = ["Use", "Rust", ".", "Go", "now"]
    gold = Doc(
        vocab, words=words, sent_starts=[True, False, False, True, False], ents=["O", "B-TECH", "O", "B-TECH", "O"]
    )
    pred = Doc(vocab, words=words)
    pred.ents = [Span(pred, 1, 4, label="TECH")]  # "Rust . Go" across the boundary
    result = check_parity([gold], [pred])
    assert result.passed, result.summary()
    assert result.spacy["ents_p"] == 0.0 and result.seqeval["p"] == 0.0


def test_frequent_errors_rank_and_classify():
    from spacy.tokens import Span

    from tech_ner.evaluation.evaluate import frequent_errors

    nlp = spacy.blank("en")

    def doc(text, ents):
        d = nlp(text)
        d.ents = [Span(d, s, e, label="TECH") for s, e in ents]
        return d

    texts = ["Apple sells the iPhone 15 in Cupertino .", "Apple | rose while Rust shipped ."]
    gold = [doc(texts[0], [(3, 5)]), doc(texts[1], [(4, 5)])]
    pred = [doc(texts[0], [(0, 1), (3, 4)]), doc(texts[1], [(0, 1)])]
    errors = frequent_errors(gold, pred)
    fp = [(e["text"], e["count"], e["kind"]) for e in errors["false_positives"]]
    fn = [(e["text"], e["count"], e["kind"]) for e in errors["false_negatives"]]
    assert fp == [("Apple", 2, "spurious"), ("iPhone", 1, "boundary")]
    assert fn == [("iPhone 15", 1, "boundary"), ("Rust", 1, "missed")]
    assert errors["false_negatives"][1]["context"] == "Apple | rose while [Rust] shipped ."
