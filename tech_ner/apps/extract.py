"""Run a pipeline over a large corpus: one output row per input document, in input order.

Inputs stream (`iter_records`): `.txt` files or folders of them (one document
per file, id = path relative to the folder), `.jsonl` (a text field per line),
`.csv` (a text column) or stdin (one document per line). A malformed line or
row becomes an error row (or stops a strict run), so the output always has
exactly one row per input document.

Memory stays flat over any number of documents (`extract_rows`): a
`doc_cleaner` drops the transformer's per-document output once the NER has
used it, each chunk of documents runs inside `nlp.memory_zone()` (strings the
chunk added to the vocab are freed after it), and rows are written as they
come. A text longer than `max_piece_chars` (default 2,500 characters) is
cut into pieces at paragraph, sentence or whitespace boundaries, so memory is
bounded by the piece, not the document; the pieces' entities come back as one
row with the text's own character offsets and terms, the row the text would
give in one piece (a text longer than `nlp.max_length` also warns,
`LongDocumentWarning`).

`extract` writes `OUTPUT.partial` row by row (each row flushed) and renames it
to OUTPUT at the end; `resume=True` counts the complete rows of an existing
partial file, drops a trailing incomplete line, skips that many inputs and
appends the rest.
"""

import itertools
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from spacy.language import Language

from ..files.problems import InputError
from .inference import Entity, merge_pieces, piece_entities, terms_function, text_pieces
from .records import Record, iter_records, resolve_inputs
from .rows import WRITERS, Row, check_paths, doc_row, error_row, output_format, partial_path, read_partial

# a batch's transformer output and NER features are what peak, about 2 KB per character of the batch (measured:
# 64 pieces of 10,000 characters took 1.96 GB in all, a whole 2 MB document 5.5 GB); on a 2 MB document (bf16),
# pieces of 2,500 characters peaked at 1.46 GB and ran 1.3x as fast as pieces of 5,000 (1.74 GB); a paragraph
# (about 1,300 characters) still fits in one piece, and few texts of ordinary length are cut
DEFAULT_MAX_PIECE_CHARS = 2_500


class LongDocumentWarning(UserWarning):
    """A text longer than `nlp.max_length` was split into pieces to be processed."""


def count_words(text: Optional[str]) -> int:
    """Whitespace-separated words: the unit of every words/s figure."""
    return len(text.split()) if text else 0


def _pieces(record: Record, text: str, max_chars: int, max_length: int) -> List[Tuple[int, int]]:
    pieces = text_pieces(text, max_chars)
    if (
        len(pieces) == 1 or len(text) <= max_length
    ):  # cutting a long text is routine; only a text the pipeline refuses is news
        return pieces
    warnings.warn(
        LongDocumentWarning(
            f"document {record.id!r}: {len(text):,} characters is longer than nlp.max_length ({max_length:,}); "
            f"processed in {len(pieces)} pieces cut at paragraph, sentence or whitespace boundaries"
        ),
        stacklevel=3,
    )
    return pieces


def _chunks(records: Iterable[Record], max_docs: int, max_chars: int) -> Iterator[List[Record]]:
    chunk: List[Record] = []
    chars = 0
    for record in records:
        chunk.append(record)
        chars += len(record.text or "")
        if len(chunk) >= max_docs or chars >= max_chars:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def _piece_items(
    chunk: List[Record], max_chars: int, max_length: int, batch_size: int, trim: Callable[[], None]
) -> Iterator[Tuple[str, Tuple[int, int, bool]]]:
    """(text of a piece, (record position, piece start, last piece?)), made as the pipeline asks for them.

    The pipeline asks for the first piece of a batch once the batch before it is done, so that is when freed
    memory is handed back (`trim`): once per batch of pieces, however many pieces a document has."""
    n = 0
    for pos, record in enumerate(chunk):
        if record.error is not None:
            continue
        text = record.text or ""  # a record without an error has its text
        pieces = _pieces(record, text, max_chars, max_length)
        for k, (start, end) in enumerate(pieces):
            if n and n % batch_size == 0:
                trim()
            n += 1
            yield (text if len(pieces) == 1 else text[start:end]), (pos, start, k == len(pieces) - 1)


def _process_chunk(
    nlp: Language,
    chunk: List[Record],
    terms: Callable,
    batch_size: int,
    n_process: int,
    max_piece_chars: int,
    trim: Callable[[], None],
) -> Iterator[Row]:
    max_chars = min(max_piece_chars, nlp.max_length)
    items = _piece_items(chunk, max_chars, nlp.max_length, batch_size, trim)
    next_pos = 0
    ents: List[Entity] = []
    with nlp.memory_zone():
        for doc, (pos, start, last) in nlp.pipe(items, as_tuples=True, batch_size=batch_size, n_process=n_process):
            while next_pos < pos:
                yield error_row(chunk[next_pos])
                next_pos += 1
            if last and start == 0:  # the whole text in one piece
                yield doc_row(chunk[pos].id, doc, terms)
            else:
                ents.extend(piece_entities(doc, start))
                if not last:
                    continue
                yield doc_row(chunk[pos].id, merge_pieces(ents), terms)
                ents = []
            next_pos = pos + 1
    for record in chunk[next_pos:]:
        yield error_row(record)


def _malloc_trim() -> Callable[[], None]:
    """A function that hands freed heap memory back to the system (glibc's `malloc_trim(0)`; a no-op elsewhere).

    The transformer allocates and frees tensors of a different shape for every batch; glibc keeps the freed
    blocks, fragmented, so RSS creeps up run after run (measured: +58% over 2,000 documents of 300 words)
    although nothing is held. Trimming after every batch keeps it flat for about 3% of the time (a fixed
    mmap threshold also did, for 15%).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]

    def trim_now() -> None:
        trim(0)  # 1 if memory was released, 0 if not: neither is the caller's concern

    return trim_now


def extract_rows(
    nlp: Language,
    records: Iterable[Record],
    *,
    batch_size: int = 64,
    n_process: int = 1,
    zone_docs: int = 2000,
    zone_chars: int = 20_000_000,
    max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
) -> Iterator[Row]:
    """Run the pipeline over a stream of records: one row per record, in order.

    Records are taken `zone_docs` at a time (or fewer, up to `zone_chars`
    characters); each such chunk runs inside `nlp.memory_zone()`, so the
    pipeline holds on to nothing from one chunk to the next. A text longer
    than `max_piece_chars` (or `nlp.max_length`) is processed in pieces cut
    by `split_text` and comes back as one row, with the text's own offsets.

    nlp (Language): The pipeline (see `load_pipeline`; add `add_doc_cleaner` yourself otherwise).
    records (Iterable[Record]): The documents.
    batch_size (int): Documents per `nlp.pipe` batch.
    n_process (int): Worker processes (each uses one torch thread).
    zone_docs (int): Documents per memory zone (with n_process > 1, workers start once per zone).
    zone_chars (int): Characters per memory zone at most (one longer document is its own zone).
    max_piece_chars (int): The longest text the pipeline is given at once; longer texts are cut into pieces.
    RETURNS (Iterator[Row]): The rows.
    """
    if batch_size < 1 or n_process < 1 or zone_docs < 1:
        raise ValueError(
            f"batch_size, n_process and zone_docs must be >= 1; got {batch_size}, {n_process}, {zone_docs}"
        )
    if max_piece_chars < 1:
        raise ValueError(f"max_piece_chars must be >= 1, got {max_piece_chars}")
    terms = terms_function(nlp)
    threads = None
    if n_process > 1:
        import torch

        # forked workers would inherit the parent's OpenMP pool and hang in their first torch op;
        # with one thread each, n_process workers share the cores without it
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    trim = _malloc_trim()
    try:
        for chunk in _chunks(records, zone_docs, zone_chars):
            yield from _process_chunk(nlp, chunk, terms, batch_size, n_process, max_piece_chars, trim)
            trim()
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- the whole run


@dataclass
class ExtractStats:
    """What a run did.

    rows (int): Rows written by this run. resumed (int): Rows already in the partial file.
    errors (int): Error rows written. error_examples (List[str]): The first error messages.
    words (int): Words of the documents processed (whitespace-separated). seconds (float): Time spent.
    """

    rows: int = 0
    resumed: int = 0
    errors: int = 0
    error_examples: List[str] = field(default_factory=list)
    words: int = 0
    seconds: float = 0.0
    output: Optional[Path] = None

    @property
    def docs_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def words_per_s(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


def _skip_done(records: Iterator[Record], done: int, last_id: Optional[str], partial: Path) -> Iterator[Record]:
    last = None
    for last in itertools.islice(records, done):
        pass
    if done and (last is None or last.index != done - 1):
        have = 0 if last is None else last.index + 1
        raise InputError(
            partial,
            None,
            f"has {done} rows but the inputs have only {have} documents: delete it or run without --resume",
        )
    if done and last is not None and last_id is not None and str(last.id) != last_id:
        raise InputError(
            partial,
            None,
            f"does not match the inputs: its row {done} has id {last_id!r}, but input "
            f"document {done} has id {str(last.id)!r}: delete it or run without --resume",
        )
    return records


def extract(
    nlp: Language,
    inputs: Sequence[Union[str, Path]],
    output: Union[str, Path],
    *,
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 64,
    n_process: int = 1,
    strict: bool = False,
    resume: bool = False,
    zone_docs: int = 2000,
    max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
    stdin: Optional[TextIO] = None,
    on_row: Optional[Callable[[Row, int], None]] = None,
    keep_errors: int = 20,
) -> ExtractStats:
    """Write one row per input document to `output` (CSV or JSONL by suffix), in input order.

    nlp (Language): The pipeline, e.g. from `load_pipeline`.
    inputs (Sequence[Union[str, Path]]): .txt files or folders, .jsonl, .csv, or "-" for stdin.
    output (Union[str, Path]): X.csv or X.jsonl; written as X.partial first, renamed at the end.
    text_field (str): JSONL field / CSV column with the text. id_field (str): with the id.
    batch_size (int): Documents per `nlp.pipe` batch. n_process (int): Worker processes.
    strict (bool): Stop at the first malformed input (InputError; no output file) instead of writing an error row.
    resume (bool): Continue from an existing X.partial.
    zone_docs (int): Documents per memory zone (see `extract_rows`).
    max_piece_chars (int): Longer texts are processed in pieces of at most this many characters (see `extract_rows`).
    stdin (Optional[TextIO]): The stream for "-".
    on_row (Optional[Callable[[Row, int], None]]): Called after each row is written, with the row and its words.
    keep_errors (int): How many error messages to keep in the stats.
    RETURNS (ExtractStats): What was written.
    """
    output = Path(output)
    fmt = output_format(output)
    sources = resolve_inputs(inputs, text_field=text_field)
    check_paths(output, sources)
    partial = partial_path(output)
    done, last_id = read_partial(partial, fmt) if resume and partial.exists() else (0, None)
    records = iter_records(sources, text_field=text_field, id_field=id_field, skip=done, stdin=stdin)
    records = _skip_done(records, done, last_id, partial)
    stats = ExtractStats(resumed=done, output=output)
    words: Dict[int, int] = {}

    def counted(stream: Iterator[Record]) -> Iterator[Record]:
        for record in stream:
            if record.error is not None and strict:
                raise InputError(None, None, f"{record.error} (strict mode: no output was written)")
            words[record.index] = count_words(record.text)
            yield record

    output.parent.mkdir(parents=True, exist_ok=True)
    appending = done > 0
    f = open(partial, "a" if appending else "w", encoding="utf-8", newline="")
    t0 = time.perf_counter()
    try:
        writer = WRITERS[fmt](f)
        if not appending:
            writer.write_header()
        index = done
        for row in extract_rows(
            nlp,
            counted(records),
            batch_size=batch_size,
            n_process=n_process,
            zone_docs=zone_docs,
            max_piece_chars=max_piece_chars,
        ):
            writer.write(row)
            n_words = words.pop(index, 0)
            index += 1
            stats.rows += 1
            stats.words += n_words
            if row["error"] is not None:
                stats.errors += 1
                if len(stats.error_examples) < keep_errors:
                    stats.error_examples.append(row["error"])
            if on_row is not None:
                on_row(row, n_words)
    except InputError:
        f.close()
        if not appending:  # nothing of this run is kept; a resumed partial keeps its earlier rows
            partial.unlink(missing_ok=True)
        raise
    except BaseException:
        f.close()  # the partial file stays for --resume
        raise
    f.close()
    os.replace(partial, output)
    stats.seconds = time.perf_counter() - t0
    return stats
