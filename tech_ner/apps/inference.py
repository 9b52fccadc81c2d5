"""The inference layer every app shares: one loader, one text splitter, one way to merge the entities of a text's
pieces, one way to get the terms.

A text longer than an app's piece size is cut (`split_text`) into pieces that cover it exactly; each piece is run
through the pipeline on its own, and its entities come back with offsets into the whole text (`piece_entities`).
`merge_pieces` gathers them in text order into `Entities`, the stand-in for a Doc that `terms_function` reads, so
a text processed in pieces gives the entities and terms it would give in one piece.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..files.problems import InputError

CLEANER_NAME = "extract_doc_cleaner"
TERMS_FACTORY = "tech_terms"


def load_pipeline(
    model: Union[str, Path],
    *,
    precision: Optional[str] = None,
    gpu_id: int = -1,
    max_length: Optional[int] = None,
    clean_docs: bool = True,
) -> Language:
    """Load a trained pipeline by folder or installed package name, for inference.

    model (Union[str, Path]): A pipeline folder (e.g. training/model-best) or an installed package (en_tech_ner).
    precision (Optional[str]): fp32, bf16, int8 or auto; None keeps what the pipeline's own `cpu_precision`
        component applies (fp32 without one).
    gpu_id (int): GPU to run on, or -1 for CPU.
    max_length (Optional[int]): Override `nlp.max_length` (longer texts are split).
    clean_docs (bool): Add a doc cleaner last (`add_doc_cleaner`).
    RETURNS (Language): The pipeline.
    Raises InputError if there is no such pipeline or it cannot be loaded.
    """
    import spacy

    from .. import pipeline  # noqa: F401  (the config functions of our pipelines)
    from ..pipeline.precision import FACTORY_NAME, apply_precision

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    # with an explicit precision, the pipeline's own component must not apply its setting first
    exclude = [FACTORY_NAME] if precision is not None else []
    try:
        nlp = spacy.load(model, exclude=exclude)
    except OSError as e:
        if "[E050]" in str(e) or "[E053]" in str(e):
            raise InputError(
                None,
                None,
                f"--model {model}: cannot load the pipeline: no pipeline folder or installed "
                "pipeline package of that name; train one (`spacy project run train`) or "
                "pass a folder",
            ) from None
        raise InputError(model, None, f"cannot load the pipeline: {str(e).splitlines()[0]}") from None
    except (ValueError, ImportError) as e:
        raise InputError(model, None, f"cannot load the pipeline: {str(e).splitlines()[0]}") from None
    if precision is not None:
        try:
            apply_precision(nlp, precision)
        except ValueError as e:
            raise InputError(None, None, f"--precision {precision}: {e}") from None
    if max_length is not None:
        if max_length < 1:
            raise InputError(None, None, f"--max-length must be >= 1, got {max_length}")
        nlp.max_length = max_length
    return add_doc_cleaner(nlp) if clean_docs else nlp


def add_doc_cleaner(nlp: Language) -> Language:
    """Drop `doc._.trf_data` and `doc.tensor` at the end of the pipeline, so
    nothing keeps the transformer's output alive (and `n_process` workers do
    not send it back). Idempotent.

    RETURNS (Language): The same pipeline.
    """
    if CLEANER_NAME not in nlp.pipe_names:
        nlp.add_pipe(
            "doc_cleaner",
            name=CLEANER_NAME,
            last=True,
            config={"attrs": {"_.trf_data": None, "tensor": None}, "silent": True},
        )
    return nlp


_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]]*\s+")
_WHITESPACE = re.compile(r"\s+")


def split_text(text: str, max_chars: int) -> List[Tuple[int, int]]:
    """Cut a text into consecutive pieces of at most `max_chars` characters.

    Each cut is after the last paragraph break in the piece's last three
    quarters, else after the last sentence end, else after the last
    whitespace, else (one huge "word") at `max_chars`. The pieces cover the
    text exactly: joined, they give it back.

    text (str): The text.
    max_chars (int): The longest piece.
    RETURNS (List[Tuple[int, int]]): (start, end) character offsets of the pieces.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    pieces: List[Tuple[int, int]] = []
    start, n = 0, len(text)
    while n - start > max_chars:
        end = start + max_chars
        earliest = start + max_chars // 4
        cut = None
        for pattern in (_PARAGRAPH_BREAK, _SENTENCE_END, _WHITESPACE):
            last = None
            for m in pattern.finditer(text, earliest, end):
                last = m
            if last is not None:
                cut = last.end()
                break
        cut = cut or end
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


def terms_function(nlp: Language) -> Callable[[Any], List[Any]]:
    """How to read the distinct terms of a Doc (or of `Entities`): the pipeline's `tech_terms` component (what
    `doc._.tech_terms` gives), else every entity grouped the same way.

    RETURNS (Callable[[Doc], List[TechTerm]]): The function.
    """
    from ..pipeline.component import collect_terms

    for name in nlp.pipe_names:
        if nlp.get_pipe_meta(name).factory == TERMS_FACTORY:
            component: Any = nlp.get_pipe(name)
            return component.terms
    return lambda doc: collect_terms(doc.ents)


class Entity(NamedTuple):
    """An entity of a piece, with offsets into the whole text: what rows and terms read of a Span."""

    start_char: int
    end_char: int
    label_: str
    text: str


@dataclass
class Entities:
    """The entities of a text processed in pieces, in text order: a stand-in for the Doc a terms function reads."""

    ents: List[Entity]


def piece_entities(doc: Doc, start: int) -> List[Entity]:
    """The entities of a piece's Doc, with offsets into the whole text (the piece starts at `start`): only these
    are kept, never the pieces' Docs, so memory stays bounded by one batch of pieces."""
    return [Entity(e.start_char + start, e.end_char + start, e.label_, e.text) for e in doc.ents]


def merge_pieces(ents: Iterable[Entity]) -> Entities:
    """The entities of all the pieces of a text as one stand-in Doc. The pieces come in text order, so the sort
    only guards; terms see every piece's mentions at once, so they are deduplicated (and counted, for
    min_count) across pieces, first appearance first."""
    return Entities(sorted(ents, key=lambda e: (e.start_char, e.end_char)))


def text_pieces(text: str, max_chars: int) -> List[Tuple[int, int]]:
    """`split_text` where the text is longer than `max_chars`, else the whole text as one piece."""
    return split_text(text, max_chars) if len(text) > max_chars else [(0, len(text))]
