"""The `bio_ner` component: IOB2 decoding, gold alignment, training, serialization, preset entities."""

import itertools

import numpy
import pytest
import spacy
from spacy.training import Example

import tech_ner.pipeline  # noqa: F401
from tech_ner.pipeline.tag_ids import allowed_transitions, biluo_to_tag_ids, decode_viterbi, tag_names, tags_to_spans

LABELS = ["LIB", "TECH"]  # tags: O, B-LIB, I-LIB, B-TECH, I-TECH


def test_tag_names_order():
    assert tag_names(LABELS) == ["O", "B-LIB", "I-LIB", "B-TECH", "I-TECH"]


@pytest.mark.parametrize(
    "tags, spans",
    [
        ([0, 0], []),
        ([1, 2, 2, 0, 3], [(0, 3, "LIB"), (4, 5, "TECH")]),
        ([1, 1], [(0, 1, "LIB"), (1, 2, "LIB")]),  # B B: two entities
        ([0, 2, 2], [(1, 3, "LIB")]),  # stray I starts one (seqeval's lenient reading)
        ([1, 4, 4], [(0, 1, "LIB"), (1, 3, "TECH")]),  # I of another label starts a new entity
        ([4], [(0, 1, "TECH")]),
    ],
)
def test_tags_to_spans(tags, spans):
    assert tags_to_spans(tags, LABELS) == spans


def _valid(seq, start, follows):
    return bool(start[seq[0]]) and all(follows[a, b] for a, b in zip(seq, seq[1:]))


def test_viterbi_is_the_best_valid_sequence_by_brute_force():
    start, follows = allowed_transitions(LABELS)
    rng = numpy.random.default_rng(7)
    changed = 0
    for trial in range(60):
        n = int(rng.integers(1, 6))
        scores = rng.normal(size=(n, 5)) * 3
        path = list(decode_viterbi(scores, start, follows))
        logp = scores - numpy.log(numpy.exp(scores).sum(axis=1, keepdims=True))
        best = max(
            (s for s in itertools.product(range(5), repeat=n) if _valid(s, start, follows)),
            key=lambda s: sum(logp[i, t] for i, t in enumerate(s)),
        )
        assert _valid(path, start, follows)
        assert path == list(best), (scores, path, best)
        changed += path != list(scores.argmax(axis=1))
    assert changed > 5  # the random cases did exercise the constrained path


def test_viterbi_repairs_an_invalid_argmax():
    start, follows = allowed_transitions(["TECH"])
    scores = numpy.log(numpy.array([[0.9, 0.05, 0.05], [0.1, 0.3, 0.6]]))  # argmax O I-TECH: invalid
    assert list(decode_viterbi(scores, start, follows)) == [0, 1]  # O B-TECH (0.9*0.3 > 0.05*0.6)


def test_gold_biluo_to_iob2_with_missing_tokens_masked():
    index = {t: i for i, t in enumerate(tag_names(LABELS))}
    ids, known = biluo_to_tag_ids(["O", "B-LIB", "I-LIB", "L-LIB", "U-TECH", None, "-"], index)
    assert ids == [0, 1, 2, 2, 3, 0, 0]
    assert known == [True] * 5 + [False, False]
    with pytest.raises(ValueError, match="entity label 'OS'.*--map"):
        biluo_to_tag_ids(["U-OS"], index)


TRAIN = [
    ("I use Python and Node.js on Linux", [(6, 12, "TECH"), (17, 24, "TECH"), (28, 33, "TECH")]),
    ("Rust is fast and Go is simple", [(0, 4, "TECH"), (17, 19, "TECH")]),
    ("The cat sat on the mat", []),
    ("We moved from Jenkins to GitHub Actions", [(14, 21, "TECH"), (25, 39, "TECH")]),
]


def _trained_blank(steps=80):
    nlp = spacy.blank("en")
    nlp.add_pipe("bio_ner", name="ner")
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return nlp, examples, losses


def test_learns_saves_and_loads(tmp_path):
    nlp, examples, losses = _trained_blank()
    assert losses["ner"] < 0.05
    scores = nlp.evaluate(examples)
    assert scores["ents_f"] == 1.0
    assert nlp.get_pipe("ner").labels == ("TECH",)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    text = TRAIN[3][0]
    assert [(e.start_char, e.end_char, e.label_) for e in loaded(text).ents] == TRAIN[3][1]
    assert [(e.text, e.label_) for e in loaded(text).ents] == [(e.text, e.label_) for e in nlp(text).ents]
    assert loaded.get_pipe("ner").cfg["decoding"] == "viterbi"


def test_keeps_preset_entities_and_sets_every_token():
    nlp, _, _ = _trained_blank()
    ruler = nlp.add_pipe("entity_ruler", before="ner")
    ruler.add_patterns([{"label": "ORG", "pattern": "Jenkins"}])
    doc = nlp("We moved from Jenkins to GitHub Actions")
    assert [(e.text, e.label_) for e in doc.ents] == [("Jenkins", "ORG"), ("GitHub Actions", "TECH")]
    assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)


def test_empty_and_all_empty_batches():
    nlp, _, _ = _trained_blank(steps=5)
    assert list(nlp.pipe(["", "  ", "Rust"])) and nlp("").ents == ()
    losses = nlp.update([Example.from_dict(nlp.make_doc(""), {"entities": []})], losses={})
    assert losses["ner"] == 0.0


def test_no_entities_to_learn_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("bio_ner", name="ner")
    examples = [Example.from_dict(nlp.make_doc("no terms here"), {"entities": []})]
    with pytest.raises(ValueError, match="no entities"):
        nlp.initialize(lambda: examples)


def test_unknown_decoding_is_refused():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="decoding 'beam'"):
        nlp.add_pipe("bio_ner", config={"decoding": "beam"})


def test_loss_ignores_tokens_that_do_not_align():
    """A gold entity ending inside a predicted token cannot be aligned: that token gets no gradient."""
    nlp, _, _ = _trained_blank(steps=1)
    ner = nlp.get_pipe("ner")
    pred = nlp.make_doc("x Node.js y")
    gold = spacy.tokens.Doc(
        nlp.vocab, words=["x", "Node", ".js", "y"], spaces=[True, False, True, False], ents=["O", "B-TECH", "O", "O"]
    )
    eg = Example(pred, gold)
    assert eg.get_aligned_ner()[1] in (None, "-")
    scores = ner.model.predict([pred])
    probs = [numpy.exp(s) / numpy.exp(s).sum(axis=1, keepdims=True) for s in scores]
    _, d_scores = ner.get_loss([eg], probs)
    assert numpy.abs(d_scores[0][1]).sum() == 0  # "Node.js": the gold entity is only "Node"
    assert numpy.abs(d_scores[0][0]).sum() > 0


def test_learn_rate_scale_reaches_the_optimizer():
    nlp = spacy.blank("en")
    nlp.add_pipe("bio_ner", name="ner", config={"learn_rate_scale": 4.0})
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    seen = []

    class Recording:
        def __call__(self, key, weights, gradient, *, lr_scale=1.0):
            seen.append(lr_scale)
            return optimizer(key, weights, gradient, lr_scale=lr_scale)

    before = nlp.get_pipe("ner").model.get_ref("output_layer").get_param("W").copy()
    nlp.update(examples, sgd=Recording())
    assert seen and set(seen) == {4.0}
    assert not numpy.array_equal(before, nlp.get_pipe("ner").model.get_ref("output_layer").get_param("W"))
    assert nlp.get_pipe("ner").learn_rate_scale == 4.0
    with pytest.raises(ValueError, match="learn_rate_scale 0"):
        nlp.add_pipe("bio_ner", name="ner2", config={"learn_rate_scale": 0})
