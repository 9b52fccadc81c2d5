"""Span getters: which pieces of a document the transformer encodes.

`tech_ner.SentenceWindows.v1` packs whole sentences into spans of at most
`window` tokens, so no token is encoded twice and short sentences share one
sequence (less padding than one sentence per sequence); a sentence longer
than `window` is cut into windows that overlap by `window - stride` tokens.

Sentences come from the doc when it has boundaries; otherwise the getter
finds them itself (after `.`, `!`, `?`) without setting them on the doc. A
sentencizer in the pipeline would also constrain the NER (no entity across a
sentence start), which breaks training on entities that contain a `.` token.
"""

from functools import partial
from typing import Callable, Iterable, List

from spacy.tokens import Doc, Span
from spacy_transformers.util import registry


SENT_END = frozenset({".", "!", "?", "...", "…"})


def _sentence_bounds(doc: Doc) -> List[tuple]:
    """(start, end) of sentences ending after ., ! or ? (and any closing punctuation)."""
    bounds = []
    start = 0
    words = [t.text for t in doc]
    n = len(words)
    i = 0
    while i < n:
        if words[i] in SENT_END:
            j = i + 1
            while j < n and words[j] in SENT_END or j < n and words[j] in (")", '"', "'"):
                j += 1
            if j < n:
                bounds.append((start, j))
                start = j
            i = j
        else:
            i += 1
    bounds.append((start, n))
    return bounds


def _windows(doc: Doc, start: int, end: int, window: int, stride: int) -> List[Span]:
    spans = []
    while True:
        spans.append(doc[start : min(start + window, end)])
        if start + window >= end:
            return spans
        start += stride


def get_sentence_windows(docs: Iterable[Doc], window: int, stride: int) -> List[List[Span]]:
    out: List[List[Span]] = []
    for doc in docs:
        spans: List[Span] = []
        if len(doc) == 0:
            out.append(spans)
            continue
        if doc.has_annotation("SENT_START"):
            bounds = [(s.start, s.end) for s in doc.sents]
        else:
            bounds = _sentence_bounds(doc)
        cur_start = cur_end = None
        for start, end in bounds:
            if end - start > window:
                if cur_start is not None:
                    spans.append(doc[cur_start:cur_end])
                    cur_start = None
                spans.extend(_windows(doc, start, end, window, stride))
            elif cur_start is not None and end - cur_start <= window:
                cur_end = end
            else:
                if cur_start is not None:
                    spans.append(doc[cur_start:cur_end])
                cur_start, cur_end = start, end
        if cur_start is not None:
            spans.append(doc[cur_start:cur_end])
        out.append(spans)
    return out


@registry.span_getters("tech_ner.SentenceWindows.v1")  # type: ignore[attr-defined]  # spacy-transformers adds it
def configure_sentence_windows(window: int = 128, stride: int = 96) -> Callable[[List[Doc]], List[List[Span]]]:
    """Pack sentences into spans of at most `window` tokens; long sentences get strided windows.

    window (int): The most tokens in one span (spaCy tokens, not wordpieces).
    stride (int): Step between windows inside a sentence longer than `window`.
    """
    if not 0 < stride <= window:
        raise ValueError(f"span getter: need 0 < stride <= window, got window={window}, stride={stride}")
    return partial(get_sentence_windows, window=window, stride=stride)
