"""tech_ner.SentenceWindows.v1: sentences packed into windows, nothing encoded twice unless a sentence is too long."""

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from tech_ner.pipeline.span_getters import configure_sentence_windows, get_sentence_windows

NLP = spacy.blank("en")


def covered(spans):
    return [i for s in spans for i in range(s.start, s.end)]


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=15), window=st.integers(4, 30))
def test_every_token_once_in_order_when_sentences_fit(lengths, window):
    words = []
    for n in lengths:
        words += ["w"] * (n - 1) + ["."]
    doc = spacy.tokens.Doc(NLP.vocab, words=words)
    spans = get_sentence_windows([doc], window=window, stride=window)[0]
    assert covered(spans) == list(range(len(doc)))
    assert all(len(s) <= window for s in spans)


def test_sentences_are_packed_and_never_cut_when_they_fit():
    doc = NLP("One two three. Four five six seven eight. Nine ten.")
    spans = get_sentence_windows([doc], window=8, stride=8)[0]
    assert [s.text for s in spans] == ["One two three.", "Four five six seven eight.", "Nine ten."]
    spans = get_sentence_windows([doc], window=64, stride=64)[0]
    assert [s.text for s in spans] == [doc.text]


def test_long_sentence_gets_overlapping_windows():
    doc = NLP(" ".join(["word"] * 20) + ".")
    spans = get_sentence_windows([doc], window=8, stride=6)[0]
    assert [(s.start, s.end) for s in spans] == [(0, 8), (6, 14), (12, 20), (18, 21)]


def test_empty_doc_and_bad_settings():
    assert get_sentence_windows([NLP("")], window=8, stride=8) == [[]]
    with pytest.raises(ValueError, match="need 0 < stride <= window"):
        configure_sentence_windows(window=8, stride=9)


def test_doc_sentence_boundaries_win():
    doc = NLP("a b c d e f")
    doc[3].is_sent_start = True
    for t in doc:
        if t.i not in (0, 3):
            t.is_sent_start = False
    spans = get_sentence_windows([doc], window=4, stride=4)[0]
    assert [(s.start, s.end) for s in spans] == [(0, 3), (3, 6)]
