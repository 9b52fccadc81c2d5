"""Copies of gold documents' tokens to predict on: the one way evaluation and calibration make them."""

from typing import Iterable, Iterator

from spacy.tokens import Doc
from spacy.vocab import Vocab


def token_copies(vocab: Vocab, gold_docs: Iterable[Doc]) -> Iterator[Doc]:
    """New docs with the gold docs' words and spaces only, one by one as they are read: no gold annotation (entities,
    sentence starts, user data) reaches the pipeline that predicts on them, and its tokens are the gold tokens.

    vocab (Vocab): The vocabulary of the pipeline that will predict on the copies.
    gold_docs (Iterable[Doc]): The gold documents.
    RETURNS (Iterator[Doc]): One copy per gold document, in order.
    """
    return (Doc(vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold_docs)
