"""The training batcher of the default configs."""

from typing import Any, Callable, Iterable, Iterator, List, Optional

from spacy.training.batchers import minibatch_by_words
from spacy.util import registry


@registry.batchers("tech_ner.batch_by_words.v1")
def configure_batch_by_words(
    size: int, discard_oversize: bool = False, tolerance: float = 0.2, get_length: Optional[Callable] = None
) -> Callable[[Iterable[Any]], Iterator[List[Any]]]:
    """spaCy's `batch_by_words` (batches of about `size` words, whatever the documents' length), with its `tolerance`
    optional, so that a config without one also takes `spacy.batch_by_padded.v1` by override alone (`spacy project
    run train-so` does), which has no `tolerance`.

    size (int): The words a batch aims at.
    discard_oversize (bool): Drop a document longer than `size` (else it is a batch of its own).
    tolerance (float): How far over `size` a batch may go.
    get_length (Optional[Callable]): The length of an item (default: its words).
    RETURNS (Callable): The batcher.
    """

    lengths = {"get_length": get_length} if get_length is not None else {}

    def batcher(items: Iterable[Any]) -> Iterator[List[Any]]:
        yield from minibatch_by_words(
            items, size=size, tolerance=tolerance, discard_oversize=discard_oversize, **lengths
        )

    return batcher
