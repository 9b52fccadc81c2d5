"""`tech-ner serve`: a web page and an HTTP API that extract technology terms.

Three ways in, each as a server-rendered page (no front-end build) and as JSON:

| page (form)            | API                       | input                                   |
| ---------------------- | ------------------------- | --------------------------------------- |
| `POST /extract`        | `POST /api/extract`       | text                                    |
| `POST /extract-url`    | `POST /api/extract-url`   | a URL: page fetched, article extracted  |
| `POST /extract-csv`    | `POST /api/extract-csv`   | a CSV upload with a `text` column       |

The page shows the text with the terms highlighted by displaCy and the
distinct terms with their counts; a CSV comes back as a download with a
`tech_terms` column added. The schema is at `/openapi.json`. Errors are JSON
`{"detail": "..."}` under `/api/` and the page with the message elsewhere:
400 a missing column, 413 too large (body, text, rows), 422 bad input, 502 a
URL that could not be fetched.

The pipeline is loaded once. Its `transformer` component is not safe to call
from several threads at once (measured: unguarded concurrent calls return
wrong entities for some documents, without an error), so one worker thread
runs the pipeline and takes every request waiting when it becomes free as one
`nlp.pipe` batch: requests are served concurrently, the pipeline is never
entered twice at once, and under load batches grow, which is where a
transformer gains throughput. Fetching, CSV parsing and rendering run in
the threadpool, beside the worker.

Texts longer than `nlp.max_length` are cut at paragraph breaks (or lines,
sentences, spaces), the pieces processed and merged back into one Doc with
`Doc.from_docs`, so every offset refers to the text as given.
"""
import asyncio
import codecs
import collections
import concurrent.futures
import csv
import io
import json
import logging
import queue
import re
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import typer

from ..files.problems import InputError, friendly_errors

logger = logging.getLogger("tech_ner.apps.serve")

TERMS_COLUMN = "tech_terms"
TERMS_SEPARATOR = "; "
CSV_DELIMITERS = (",", ";", "\t", "|")
DISPLACY_COLORS = {"TECH": "#7aecec"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits and switches of the server.

    max_body_bytes (int): The largest request body (form, JSON or upload), in bytes; larger is a 413.
    max_text_chars (int): The most characters in one text (pasted, fetched article or CSV cell); more is a 413.
    max_csv_rows (int): The most data rows in one CSV upload; more is a 413.
    fetch_timeout (float): Seconds for fetching one URL, redirects included.
    max_page_bytes (int): The largest page body fetched, in bytes (streamed; the fetch stops past it).
    max_redirects (int): The most redirects followed.
    allow_private_urls (bool): Fetch from loopback and private addresses too (tests only).
    allowed_url_hosts (Tuple[str, ...]): Hosts (`host` or `host:port`) exempt from the address check.
    batch_size (int): Texts per `nlp.pipe` batch, and the most pieces taken from one request per round.
    piece_chars (int): Texts are processed in pieces of at most this many characters, the requests that wait
        taking turns piece by piece (about 1 s of a transformer's work on 2 CPU cores at the default).
    request_timeout (float): Seconds one request may take, waiting included; longer is a 503.
    allowed_hosts (Tuple[str, ...]): Host names the `Host` header may carry ("*": any), against DNS rebinding.
    """

    max_body_bytes: int = 5_000_000
    max_text_chars: int = 500_000
    max_csv_rows: int = 10_000
    fetch_timeout: float = 10.0
    max_page_bytes: int = 5_000_000
    max_redirects: int = 5
    allow_private_urls: bool = False
    allowed_url_hosts: Tuple[str, ...] = ()
    batch_size: int = 32
    piece_chars: int = 5_000
    request_timeout: float = 300.0
    allowed_hosts: Tuple[str, ...] = ("*",)

    def __post_init__(self):
        for name in ("max_body_bytes", "max_text_chars", "max_csv_rows", "max_page_bytes", "batch_size",
                     "piece_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServeSettings.{name} must be an integer >= 1; got {value!r}")
        if not self.fetch_timeout > 0:
            raise ValueError(f"ServeSettings.fetch_timeout must be > 0; got {self.fetch_timeout!r}")
        if not self.request_timeout > 0:
            raise ValueError(f"ServeSettings.request_timeout must be > 0; got {self.request_timeout!r}")
        if not self.allowed_hosts:
            raise ValueError("ServeSettings.allowed_hosts is empty: no request could be answered; use ('*',) for any")
        if self.max_redirects < 0:
            raise ValueError(f"ServeSettings.max_redirects must be >= 0; got {self.max_redirects!r}")

    def fetch_policy(self):
        from .fetch import FetchPolicy

        return FetchPolicy(timeout=self.fetch_timeout, max_bytes=self.max_page_bytes, max_redirects=self.max_redirects,
                           allow_private=self.allow_private_urls, allowed_hosts=frozenset(self.allowed_url_hosts))


class ServeError(Exception):
    """An error answered with `status` and `message` (JSON under /api/, the page elsewhere)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- the pipeline -------------------------------------------------------------------------------------------------


def load_pipeline(model: Union[str, Path]):
    """Load a trained pipeline by folder or installed package name.

    model (Union[str, Path]): A pipeline folder (e.g. training/model-best) or a package name (en_tech_ner).
    RETURNS (Language): The pipeline.
    Raises InputError if there is no such pipeline.
    """
    import spacy

    from .. import pipeline  # noqa: F401  (the tokenizer and span getter the config names)

    try:
        return spacy.load(model)
    except OSError as e:
        if "[E050]" in str(e) or "[E053]" in str(e):
            raise InputError(None, None, f"--model {model}: no pipeline folder or installed pipeline package of that "
                                         "name; train one (`spacy project run train`) or pass a folder")
        raise


SPACY_DEFAULT_META = {"name": "pipeline", "version": "0.0.0"}


def pipeline_name(nlp, source: Optional[Union[str, Path]] = None) -> str:
    """The name to show for a pipeline: its meta's name and version (`en_tech_ner 1.0.0`), or, when the meta has
    spaCy's defaults (a training output), the folder it was loaded from.

    source (Optional[Union[str, Path]]): The folder or package name it was loaded from, if known.
    RETURNS (str): The name.
    """
    meta = nlp.meta or {}
    name = meta.get("name") or SPACY_DEFAULT_META["name"]
    lang = meta.get("lang") or nlp.lang
    version = meta.get("version")
    if name == SPACY_DEFAULT_META["name"]:
        if source is not None:
            return Path(str(source)).resolve().name if Path(str(source)).exists() else str(source)
        return f"an unnamed {lang} pipeline"
    full = name if name.startswith(f"{lang}_") else f"{lang}_{name}"
    return f"{full} {version}" if version and version != SPACY_DEFAULT_META["version"] else full


def terms_function(nlp) -> Callable:
    """How to read the distinct terms of a Doc: the pipeline's `tech_terms` component, or every entity.

    RETURNS (Callable[[Doc], List[TechTerm]]): The function.
    """
    from ..pipeline.component import collect_terms

    for name in nlp.pipe_names:
        if nlp.get_pipe_meta(name).factory == "tech_terms":
            return nlp.get_pipe(name).terms
    return lambda doc: collect_terms(doc.ents)


def split_text(text: str, max_chars: int) -> List[str]:
    """Cut a text into pieces of at most `max_chars` characters that join back to it exactly.

    Each cut falls after the last paragraph break that fits, else the last line break, sentence end or
    space; only a run of `max_chars` characters with none of these is cut mid-word.

    text (str): The text.
    max_chars (int): The longest piece.
    RETURNS (List[str]): The pieces; `"".join(pieces) == text`.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1; got {max_chars}")
    pieces = []
    start = 0
    patterns = (r"\n[ \t]*\n\s*", r"\n\s*", r"[.!?][\"')\]]*\s+", r"\s+")
    while len(text) - start > max_chars:
        window = text[start:start + max_chars]
        cut = 0
        for pattern in patterns:
            ends = [m.end() for m in re.finditer(pattern, window)]
            if ends:
                cut = ends[-1]
                break
        if cut <= 0:
            cut = max_chars
        pieces.append(text[start:start + cut])
        start += cut
    pieces.append(text[start:])
    return pieces


@dataclass
class Extraction:
    """What the pipeline found in one text.

    text (str): The text, as given.
    entities (List[Tuple[int, int, str]]): Character offsets and label of every entity, in order.
    terms (List[TechTerm]): The distinct technology terms, in order of first mention.
    """

    text: str
    entities: List[Tuple[int, int, str]]
    terms: List[Any]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "characters": len(self.text),
            "terms": [t.to_dict() for t in self.terms],
            "entities": [{"start": s, "end": e, "label": label, "text": self.text[s:e]} for s, e, label in self.entities],
        }

    def terms_cell(self) -> str:
        return TERMS_SEPARATOR.join(t.text for t in self.terms)


class _Job:
    """One request's texts, cut into pieces that the worker takes a few at a time."""

    def __init__(self, texts: Sequence[str], max_chars: int):
        self.texts = list(texts)
        self.pieces = [split_text(t, max_chars) if len(t) > max_chars else [t] for t in self.texts]
        self.todo = collections.deque((i, j) for i, pieces in enumerate(self.pieces) for j in range(len(pieces)))
        self.docs: List[List[Any]] = [[None] * len(pieces) for pieces in self.pieces]
        self.future: concurrent.futures.Future = concurrent.futures.Future()

    def take(self, max_pieces: int, max_chars: int) -> List[Tuple[int, int, str]]:
        """The next pieces: at least one, then more while under `max_pieces` and `max_chars`."""
        taken: List[Tuple[int, int, str]] = []
        chars = 0
        while self.todo and len(taken) < max_pieces and (not taken or chars + len(self._peek()) <= max_chars):
            i, j = self.todo.popleft()
            piece = self.pieces[i][j]
            taken.append((i, j, piece))
            chars += len(piece)
        return taken

    def _peek(self) -> str:
        i, j = self.todo[0]
        return self.pieces[i][j]


class Extractor:
    """Runs the pipeline in one worker thread, interleaving the requests that wait.

    Every text is cut into pieces of at most `piece_chars` characters. The worker goes round the requests in
    turn, taking from each at most `batch_size` pieces and `piece_chars` characters, and runs the round as one
    `nlp.pipe` batch: a small request sent beside a big one waits for one round, not for the big one.

    nlp (Language): The pipeline.
    batch_size (int): The most pieces taken from one request per round, and the `nlp.pipe` batch size.
    max_batch_texts (int): The most pieces in one round (every request's together).
    piece_chars (int): The longest piece; also capped by `nlp.max_length`.
    """

    def __init__(self, nlp, *, batch_size: int = 32, max_batch_texts: int = 128, piece_chars: int = 5_000):
        self.nlp = nlp
        self.batch_size = batch_size
        self.max_batch_texts = max_batch_texts
        self.piece_chars = piece_chars
        self._terms = terms_function(nlp)
        self._jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    def submit(self, texts: Sequence[str]) -> "concurrent.futures.Future[List[Extraction]]":
        """Queue texts for the worker. RETURNS (Future[List[Extraction]]): one Extraction per text; cancel it
        to drop the pieces not yet processed."""
        job = _Job(texts, max(1, min(self.piece_chars, self.nlp.max_length)))
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="tech-ner-nlp", daemon=True)
                self._thread.start()
        self._jobs.put(job)
        return job.future

    async def extract(self, texts: Sequence[str], timeout: Optional[float] = None) -> List[Extraction]:
        """Process texts without blocking the event loop.

        timeout (Optional[float]): Seconds before the request is dropped with a 503 ServeError.
        RETURNS (List[Extraction]): One per text, in order.
        """
        future = asyncio.wrap_future(self.submit(texts))  # cancelling it cancels the job
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ServeError(503, f"the request took longer than {timeout:g} s to process (the server's "
                                  "--request-timeout); send less text, or try again when the server is less busy")

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout=30)

    def _work(self) -> None:
        active: "collections.deque[_Job]" = collections.deque()
        stopping = False
        while True:
            arrived = [] if active or stopping else [self._jobs.get()]  # idle: wait for work
            while True:  # every request that arrived joins the rotation
                try:
                    arrived.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            for job in arrived:
                if job is None:
                    stopping = True
                else:
                    active.append(job)
            for job in [j for j in active if j.future.cancelled()]:
                active.remove(job)  # timed out or abandoned: its pieces are not worth the time
            if not active:
                if stopping:
                    return
                continue
            self._run_round(active)

    def _run_round(self, active: "collections.deque[_Job]") -> None:
        round_: List[Tuple[_Job, List[Tuple[int, int, str]]]] = []
        budget = self.max_batch_texts
        for job in active:
            if budget <= 0:
                break
            taken = job.take(min(self.batch_size, budget), self.piece_chars)
            budget -= len(taken)
            round_.append((job, taken))
        active.rotate(-len(round_))  # the jobs served go to the back of the line
        try:
            docs = iter(self.nlp.pipe([p for _, taken in round_ for _, _, p in taken], batch_size=self.batch_size))
            for job, taken in round_:
                for i, j, _ in taken:
                    job.docs[i][j] = next(docs)
        except Exception:
            # one request's text must not fail the others: retry each alone
            for job, taken in round_:
                try:
                    for (i, j, _), doc in zip(taken, list(self.nlp.pipe([p for _, _, p in taken]))):
                        job.docs[i][j] = doc
                except Exception as e:  # noqa: BLE001  (handed to the request that sent it)
                    active.remove(job)
                    _settle(job.future, exception=e)
        for job, _ in round_:
            if not job.todo and job in active:
                active.remove(job)
                try:
                    _settle(job.future, result=self._merge(job))
                except Exception as e:  # noqa: BLE001
                    _settle(job.future, exception=e)

    def _merge(self, job: _Job) -> List[Extraction]:
        from spacy.tokens import Doc

        out = []
        for text, parts in zip(job.texts, job.docs):
            doc = parts[0] if len(parts) == 1 else Doc.from_docs(parts, ensure_whitespace=False,
                                                                   exclude=["tensor", "user_data"])
            if doc.text != text:  # an invariant of split_text; checked even under `python -O`
                raise RuntimeError("pieces of a long text must join back to it")
            entities = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
            out.append(Extraction(text=text, entities=entities, terms=self._terms(doc)))
        return out


def _settle(future: concurrent.futures.Future, result: Any = None, exception: Optional[BaseException] = None) -> None:
    """Set a future's outcome unless it was cancelled meanwhile (a request that timed out)."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


# --- CSV ----------------------------------------------------------------------------------------------------------


@dataclass
class CsvTable:
    """A parsed CSV upload: every data line is in exactly one row (good or error) or is a blank line.

    header (List[str]): The column names.
    rows (List[List[str]]): The data rows, each as long as the header; an error row holds what could be read.
    errors (List[Optional[str]]): Per row, None or `CSV line N: what is wrong`.
    lines (List[Tuple[int, int]]): Per row, its first and last physical line (1-based; the header is line 1).
    text_index (int): The position of the text column.
    delimiter (str): The delimiter found in the header.
    lineterminator (str): "\\r\\n", "\\n" or "\\r", as in the upload.
    bom (bool): Whether the upload started with a UTF-8 byte order mark.
    blank_lines (int): Blank lines skipped.
    """

    header: List[str]
    rows: List[List[str]]
    text_index: int
    errors: List[Optional[str]] = field(default_factory=list)
    lines: List[Tuple[int, int]] = field(default_factory=list)
    delimiter: str = ","
    lineterminator: str = "\r\n"
    bom: bool = False
    blank_lines: int = 0

    def __post_init__(self):
        self.errors = self.errors or [None] * len(self.rows)


@dataclass
class CsvRecord:
    """One CSV record read from physical lines, or the error that stands in for one line.

    first_line (int): Its first physical line (1-based).
    last_line (int): Its last physical line; a quoted field with line breaks spans several.
    fields (List[str]): The fields; for an error, those of the line read alone, as far as they go.
    error (Optional[str]): What is wrong, without the line number; None for a good record.
    """

    first_line: int
    last_line: int
    fields: List[str]
    error: Optional[str] = None


_LINE_END = re.compile(rb"\r\n|\n|\r")


def split_lines(data: bytes) -> List[bytes]:
    """Physical lines, each with its line end (\\r\\n, \\n or a lone \\r)."""
    lines, start = [], 0
    for m in _LINE_END.finditer(data):
        lines.append(data[start:m.end()])
        start = m.end()
    if start < len(data):
        lines.append(data[start:])
    return lines


def decode_lines(lines: Sequence[bytes]) -> List[Optional[str]]:
    """Decode each line alone: UTF-8, or Windows-1252 for a file with no line of non-ASCII UTF-8 (a spreadsheet
    export on Windows). A line that does not decode is None, so it costs one error row, not the file."""

    def decode(line: bytes, encoding: str) -> Optional[str]:
        try:
            return line.decode(encoding)
        except UnicodeDecodeError:
            return None

    utf8 = [decode(line, "utf-8") for line in lines]
    if None in utf8 and not any(text is not None and not text.isascii() for text in utf8):
        return [decode(line, "cp1252") for line in lines]
    return utf8


def csv_records(lines: Sequence[Optional[str]], *, delimiter: str, n_fields: int,
                first_line: int = 2) -> Iterator[CsvRecord]:
    """Read CSV records from decoded physical lines, never merging rows: rows in = rows out + error rows.

    A record is read with the csv module (strict quoting) from one line on. It is an error that costs only
    that line, and reading resumes on the next line, when the line did not decode (None) or holds a NUL, when
    the quoting is malformed or never closed, or when a quoted field spans lines of which one looks like a row
    of its own (as many fields as the header, and a first field of the same kind: a number or an id), or when
    it gives more fields than the header. A one-line record with more fields than the header is an error row
    too. Blank lines are skipped.

    lines (Sequence[Optional[str]]): The data lines, each with its line end; None for one that did not decode.
    delimiter (str): The delimiter.
    n_fields (int): The number of columns in the header.
    first_line (int): The line number of `lines[0]`.
    YIELDS (CsvRecord): The records and error rows, in order.
    """

    def lines_from(start: int) -> Iterator[str]:
        for k in range(start, len(lines)):
            line = lines[k]
            if line is None or "\x00" in line:  # a quoted field does not run on into such a line
                return
            yield line

    i = 0
    while i < len(lines):
        line, number = lines[i], first_line + i
        if line is None:
            yield CsvRecord(number, number, [], "not valid UTF-8 (nor Windows-1252) text")
            i += 1
            continue
        if not line.strip("\r\n"):
            i += 1
            continue
        if "\x00" in line:
            yield CsvRecord(number, number, _fields_alone(line, delimiter), "contains NUL bytes")
            i += 1
            continue
        reader = csv.reader(lines_from(i), delimiter=delimiter, strict=True)
        try:
            fields = next(reader)
        except csv.Error as e:
            if "field limit" in str(e):
                problem = f"a field is longer than the server's limit ({e}; --max-text-chars)"
            elif "unexpected end of data" in str(e):
                problem = ("a quoted field opened on this line is never closed: close it, or double a quote "
                           "inside it (\"\")")
            else:
                problem = f"malformed quoting on line {number + reader.line_num - 1} ({e})"
            yield CsvRecord(number, number, _fields_alone(line, delimiter), problem)
            i += 1
            continue
        used = reader.line_num
        swallowed = next((k for k in range(i + 1, i + used) if _looks_like_a_row(lines[k], line, delimiter, n_fields)),
                         None)
        if swallowed is not None:
            yield CsvRecord(number, number, _fields_alone(line, delimiter),
                            f"a quoted field opened on this line runs over line {first_line + swallowed}, which looks "
                            "like a row of its own: close the quote, or double a quote inside it (\"\")")
            i += 1
            continue
        if len(fields) > n_fields and used > 1:  # a quote that ran over lines into too many fields was stray
            yield CsvRecord(number, number, _fields_alone(line, delimiter),
                            f"a quoted field opened on this line runs over {used - 1} more line(s) into "
                            f"{len(fields)} fields, but the header has {n_fields}: close the quote, or double a "
                            "quote inside it (\"\")")
            i += 1
            continue
        error = f"{len(fields)} fields, but the header has {n_fields}" if len(fields) > n_fields else None
        yield CsvRecord(number, number + used - 1, fields, error)
        i += used


def _fields_alone(line: str, delimiter: str) -> List[str]:
    """The fields of one line read on its own (lenient), to show in its error row."""
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    except csv.Error:
        return [line.rstrip("\r\n")]


def _id_kind(value: str) -> Optional[str]:
    """"number", "id" (a token with a digit), or None for free text: what a row's first field looks like."""
    value = value.strip()
    if value.isdigit():
        return "number"
    token = value and len(value) <= 64 and not any(c.isspace() or c == '"' for c in value)
    if token and any(c.isdigit() for c in value):
        return "id"
    return None


def _looks_like_a_row(line: Optional[str], start: str, delimiter: str, n_fields: int) -> bool:
    """Whether a line inside a multi-line quoted field looks like a row of its own, one a stray quote swallowed."""
    if line is None or n_fields < 2:
        return False
    fields, first = _fields_alone(line, delimiter), _fields_alone(start, delimiter)
    kind = _id_kind(first[0]) if first else None
    return len(fields) == n_fields and kind is not None and _id_kind(fields[0]) == kind


def read_csv(data: bytes, *, column: str = "text", max_rows: int = 10_000, max_text_chars: int = 500_000) -> CsvTable:
    """Parse a CSV upload that has a text column; the delimiter (, ; tab |) is the one that finds the column.

    A malformed or undecodable row becomes an error row naming its line (see `csv_records`); the header must
    be sound.

    data (bytes): The file.
    column (str): The name of the text column (exact, else ignoring case and surrounding spaces).
    max_rows (int): The most data rows.
    max_text_chars (int): The most characters in one text cell.
    RETURNS (CsvTable): The table.
    Raises ServeError: 400 no such column, 413 too many rows or a cell too long, 422 an unreadable header.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    lines = decode_lines(split_lines(data[len(codecs.BOM_UTF8):] if bom else data))
    if lines and lines[0] is None:
        raise ServeError(422, "CSV line 1 (the header) is neither UTF-8 nor Windows-1252 text")
    if not lines or not lines[0].strip():
        raise ServeError(400, f"the CSV file has no header row; it needs a {column!r} column")
    first_line = lines[0]
    if "\x00" in first_line:
        raise ServeError(422, "the CSV file contains NUL bytes in its header: is it a binary file?")
    first_line = first_line.rstrip("\r\n")
    wanted = column.strip().casefold()
    delimiter, index, header = ",", -1, _fields_alone(first_line, ",")
    for candidate in CSV_DELIMITERS:
        fields = _fields_alone(first_line, candidate)
        names = [f.strip() for f in fields]
        if column in fields or column in names:
            delimiter, header, index = candidate, fields, names.index(column.strip())
            break
        folded = [n.casefold() for n in names]
        if wanted in folded and index < 0:
            delimiter, header, index = candidate, fields, folded.index(wanted)
    if index < 0:
        shown = ", ".join(repr(h) for h in header[:20])
        raise ServeError(400, f"the CSV has no {column!r} column; its header has {shown}")
    try:
        header = next(csv.reader([first_line], delimiter=delimiter, strict=True))
    except csv.Error as e:
        raise ServeError(422, f"CSV line 1 (the header): {e}")
    # a long text cell is legal CSV; raise the csv module's per-field limit (a process-wide setting) to fit it
    if csv.field_size_limit() < max_text_chars + 1:
        csv.field_size_limit(max_text_chars + 1)
    table = CsvTable(header=header, rows=[], text_index=index, delimiter=delimiter, bom=bom,
                     lineterminator=re.search(r"\r\n|\n|\r|$", lines[0]).group() or "\n")
    for record in csv_records(lines[1:], delimiter=delimiter, n_fields=len(header)):
        if len(table.rows) >= max_rows:
            raise ServeError(413, f"the CSV has more than {max_rows} rows (the server's --max-csv-rows)")
        row = (record.fields + [""] * len(header))[:len(header)]
        if record.error is None and len(row[index]) > max_text_chars:
            raise ServeError(413, f"CSV line {record.first_line}: the text has {len(row[index])} characters; "
                                  f"the limit is {max_text_chars} (--max-text-chars)")
        table.rows.append(row)
        table.errors.append(None if record.error is None else f"CSV line {record.first_line}: {record.error}")
        table.lines.append((record.first_line, record.last_line))
    used = sum(last - first + 1 for first, last in table.lines)
    table.blank_lines = len(lines) - 1 - used
    return table


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(cell: str) -> str:
    """A cell a spreadsheet would not run as a formula: one starting with = + - @ tab or CR gets a leading
    single quote (OWASP's advice on CSV injection); a plain number such as -5 is data and stays."""
    if not cell.startswith(FORMULA_STARTS):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


ERROR_COLUMN = f"{TERMS_COLUMN}_error"


def write_csv(table: CsvTable, cells: Sequence[str], stats: Optional[Dict[str, int]] = None) -> bytes:
    """The table with a `tech_terms` column (added last, or filled in if the upload has one already) and, if any
    row is an error row, a `tech_terms_error` column with its message. Every cell that a spreadsheet would run
    as a formula is neutralised (`neutralise_cell`).

    table (CsvTable): The upload.
    cells (Sequence[str]): The terms of each row, joined with "; " (ignored for error rows).
    stats (Optional[Dict[str, int]]): If given, gets "neutralised": the number of cells changed.
    RETURNS (bytes): The CSV, UTF-8 (with a byte order mark if the upload had one).
    """
    header = list(table.header)
    names = [h.strip() for h in header]
    if TERMS_COLUMN in names:
        at = names.index(TERMS_COLUMN)
    else:
        at = len(header)
        header.append(TERMS_COLUMN)
    with_errors = any(table.errors)
    if with_errors:
        header.append(ERROR_COLUMN)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=table.delimiter, lineterminator=table.lineterminator)
    # the csv module quotes a field for the characters of its own line end only: a lone "\r" in a "\n" file
    # would go out bare and split the row when read back, so such a row is written with every field quoted
    quote_all = csv.writer(out, delimiter=table.delimiter, lineterminator=table.lineterminator,
                           quoting=csv.QUOTE_ALL)
    changed = 0

    def write(row: List[str]) -> None:
        nonlocal changed
        safe = [neutralise_cell(c) for c in row]
        changed += sum(x != y for x, y in zip(safe, row))
        bare_break = any(ch in c and ch not in table.lineterminator for c in safe for ch in "\r\n")
        (quote_all if bare_break else writer).writerow(safe)

    write(header)
    for row, cell, error in zip(table.rows, cells, table.errors):
        row = list(row)
        cell = "" if error else cell
        if at == len(row):
            row.append(cell)
        else:
            row[at] = cell
        if with_errors:
            row.append(error or "")
        write(row)
    if stats is not None:
        stats["neutralised"] = changed
    data = out.getvalue().encode("utf-8")
    return codecs.BOM_UTF8 + data if table.bom else data


def download_name(filename: Optional[str]) -> str:
    stem = Path(filename or "").stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "texts"
    return f"{stem}.{TERMS_COLUMN}.csv"


# --- the page -----------------------------------------------------------------------------------------------------


def render_entities(extraction: Extraction) -> str:
    """The text with its entities highlighted: displaCy's entity renderer (its `mark` elements).

    RETURNS (str): HTML; displaCy escapes the text.
    """
    import warnings

    from spacy import displacy

    doc = {"text": extraction.text, "title": None,
           "ents": [{"start": s, "end": e, "label": label} for s, e, label in extraction.entities]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W006: no entities to visualise is a result here, not a problem
        return displacy.render(doc, style="ent", manual=True, page=False, jupyter=False,
                               options={"colors": DISPLACY_COLORS})


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% if result %}{{ result.terms|length }} terms · {% endif %}Technology terms</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem; color: #222; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
header h1 { margin: 0.3rem 0; font-size: 1.6rem; }
header span { color: #666; }
.forms { display: grid; grid-template-columns: 2fr 1fr; gap: 1rem; margin: 1rem 0; }
form { border: 1px solid #ddd; border-radius: 0.4rem; padding: 0.8rem; }
form h2 { font-size: 1rem; margin: 0 0 0.5rem; }
textarea { width: 100%; box-sizing: border-box; min-height: 9rem; font: inherit; }
input[type=url] { width: 100%; box-sizing: border-box; font: inherit; }
button { margin-top: 0.5rem; font: inherit; padding: 0.3rem 0.9rem; }
.side { display: flex; flex-direction: column; gap: 1rem; }
.error { background: #fdecea; border: 1px solid #f5c2c0; padding: 0.7rem 1rem; border-radius: 0.4rem; }
.source { color: #555; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { text-align: left; padding: 0.2rem 0.8rem; border-bottom: 1px solid #eee; }
td.count { text-align: right; }
.note { color: #666; font-size: 0.9rem; }
@media (max-width: 50rem) { .forms { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1>Technology terms</h1><span>{{ model }}</span></header>
<div class="forms">
  <form method="post" action="/extract" id="text-form">
    <h2><label for="text">Paste text</label></h2>
    <textarea id="text" name="text" required>{{ text }}</textarea>
    <button type="submit" id="extract-text">Extract terms</button>
  </form>
  <div class="side">
    <form method="post" action="/extract-url" id="url-form">
      <h2><label for="url">Or a web page</label></h2>
      <input id="url" name="url" type="url" placeholder="https://example.com/article" value="{{ url }}" required>
      <button type="submit">Fetch and extract</button>
    </form>
    <form method="post" action="/extract-csv" enctype="multipart/form-data" id="csv-form">
      <h2><label for="file">Or a CSV file with a <code>text</code> column</label></h2>
      <input id="file" name="file" type="file" accept=".csv,text/csv" required>
      <button type="submit">Download with <code>tech_terms</code></button>
    </form>
  </div>
</div>
<p class="note">Limits: {{ limits }}. JSON API: <code>/api/extract</code>, <code>/api/extract-url</code>,
<code>/api/extract-csv</code>; schema at <a href="/openapi.json">/openapi.json</a>.</p>
{% if error %}<div class="error" role="alert" id="error">{{ error }}</div>{% endif %}
{% if result %}
<section id="result">
  {% if source %}<p class="source">From <a href="{{ source }}" rel="noreferrer nofollow">{{ source }}</a></p>{% endif %}
  <h2>{{ result.terms|length }} distinct term{{ "" if result.terms|length == 1 else "s" }},
      {{ result.entities|length }} mention{{ "" if result.entities|length == 1 else "s" }}</h2>
  {% if result.terms %}
  <table id="terms">
    <thead><tr><th>term</th><th>count</th><th>label</th></tr></thead>
    <tbody>
    {% for term in result.terms %}<tr><td class="term">{{ term.text }}</td><td class="count">{{ term.count }}</td><td>{{ term.labels|join(", ") }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
  <div id="highlighted">{{ highlighted|safe }}</div>
</section>
{% endif %}
</body>
</html>
"""


def _limits_note(settings: ServeSettings) -> str:
    return (f"{settings.max_text_chars:,} characters of text, {settings.max_body_bytes:,} bytes per request, "
            f"{settings.max_csv_rows:,} CSV rows")


# --- the app ------------------------------------------------------------------------------------------------------


class _BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is a 413, found from Content-Length before reading
    or by counting the bytes of a chunked body as they arrive."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException

        message = f"the request body is larger than {self.max_bytes} bytes (the server's --max-body-bytes)"
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.max_bytes
        seen = 0

        async def limited_receive():
            nonlocal seen
            if too_large:  # raised where the app reads the body, so its error handlers answer
                raise HTTPException(413, message)
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, message)
            return msg

        return await self.app(scope, limited_receive, send)


def _printable(value: Any) -> Any:
    """Strings that UTF-8 can carry, with lone surrogates written as backslash escapes, throughout a JSON value."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str, invalid_bytes: bool = False) -> Optional[str]:
    """What makes a string unfit as text: a NUL character or a lone surrogate (which no UTF-8 can carry).

    invalid_bytes (bool): The string was decoded with "surrogateescape": U+DC80-U+DCFF stand for bytes that are
        not UTF-8.
    RETURNS (Optional[str]): The problem, or None.
    """
    m = _BAD_CHAR.search(value)
    if m is None:
        return None
    char = ord(m.group())
    if char == 0:
        return f"contains a NUL character (U+0000) at character {m.start()}: send plain text"
    if invalid_bytes and 0xDC80 <= char <= 0xDCFF:
        return f"not valid UTF-8 (byte 0x{char - 0xDC00:02X} at character {m.start()}): send UTF-8 text"
    return (f"contains a lone surrogate (U+{char:04X}) at character {m.start()}, which is not valid Unicode "
            "text: send UTF-8 text")


def _json_problem(body: bytes) -> Optional[str]:
    """The first JSON key or string that is not fit as text, as `field: problem`."""
    try:
        body.decode("utf-8")
        invalid = None
    except UnicodeDecodeError as e:
        invalid = f"body: not valid UTF-8 (byte 0x{e.object[e.start]:02X} at byte {e.start}): send UTF-8 JSON"
    try:
        parsed = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        return invalid  # not JSON: the app says so, unless it was not UTF-8 either

    def walk(value: Any, path: str) -> Optional[str]:
        if isinstance(value, str):
            problem = text_problem(value, invalid_bytes=invalid is not None)
            return f"{path}: {problem}" if problem else None
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and text_problem(key, invalid is not None):
                return f"{path}: a field name {text_problem(key, invalid is not None)}"
            found = walk(item, f"{key}" if path == "body" else f"{path}.{key}")
            if found:
                return found
        return None

    return walk(parsed, "body") or invalid


def _form_problem(pairs: Sequence[Tuple[bytes, bytes]]) -> Optional[str]:
    """The first form field (name, value as bytes) that is not fit as text, as `field: problem`."""
    for name, value in pairs:
        shown = name.decode("utf-8", "surrogateescape")
        for part, raw in (("a field name", name), (None, value)):
            try:
                problem = text_problem(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                problem = f"not valid UTF-8 (byte 0x{raw[e.start]:02X} at byte {e.start}): send UTF-8 text"
            if problem:
                where = "body" if part else shown.encode("utf-8", "backslashreplace").decode("utf-8")
                return f"{where}: {part + ' ' if part else ''}{problem}"
    return None


def _urlencoded_fields(body: bytes) -> List[Tuple[bytes, bytes]]:
    from urllib.parse import unquote_to_bytes

    pairs = []
    for item in body.split(b"&"):
        if item:
            name, _, value = item.partition(b"=")
            pairs.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


def _multipart_fields(body: bytes, boundary: bytes) -> List[Tuple[bytes, bytes]]:
    """(name, value) of each part that is not a file (a file's bytes are its reader's business)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts: List[Tuple[Dict[bytes, bytes], List[bytes]]] = []
    header = {"field": b"", "value": b""}

    def on_part_begin():
        parts.append(({}, []))

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        parts[-1][0][header["field"].lower()] = header["value"]
        header.update(field=b"", value=b"")

    def on_part_data(data, start, end):
        parts[-1][1].append(data[start:end])

    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001  (malformed: the app's own parser answers it)
        return []
    fields = []
    for headers, data in parts:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        if b"filename" not in options:
            fields.append((options.get(b"name", b""), b"".join(data)))
    return fields


class _TextGuard:
    """ASGI middleware: every field of a JSON, form or multipart body must be text: UTF-8, without lone
    surrogates or NUL characters; else a 422 naming the field. One check for every route, present and future,
    before any of them sees the text (a lone surrogate cannot even be written back in a response)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.exceptions import HTTPException
        from starlette.concurrency import run_in_threadpool

        content_type = Headers(scope=scope).get("content-type", "")
        kind = content_type.split(";", 1)[0].strip().lower()
        if not (kind == "application/json" or kind.endswith("+json") or kind == "application/x-www-form-urlencoded"
                or kind == "multipart/form-data"):
            return await self.app(scope, receive, send)
        messages: List[Dict[str, Any]] = []
        checked = False

        async def checked_receive():
            nonlocal checked
            if checked:
                return messages.pop(0) if messages else await receive()
            body = b""
            while True:  # the body limit, outside, stops an endless one
                msg = await receive()
                messages.append(msg)
                if msg["type"] != "http.request":
                    break
                body += msg.get("body", b"")
                if not msg.get("more_body", False):
                    break
            checked = True
            problem = await run_in_threadpool(_body_problem, kind, content_type, body)
            if problem:  # raised where the app reads the body, so its error handlers answer
                raise HTTPException(422, problem)
            return messages.pop(0)

        return await self.app(scope, checked_receive, send)


def _body_problem(kind: str, content_type: str, body: bytes) -> Optional[str]:
    if kind == "application/x-www-form-urlencoded":
        return _form_problem(_urlencoded_fields(body))
    if kind == "multipart/form-data":
        from python_multipart.multipart import parse_options_header

        boundary = parse_options_header(content_type)[1].get(b"boundary")
        return _form_problem(_multipart_fields(body, boundary)) if boundary else None
    return _json_problem(body)


SECURITY_HEADERS = (
    # the page has inline CSS (its own and displaCy's style attributes), no scripts, and posts only to itself
    ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


class _SecurityHeaders:
    """ASGI middleware: the security headers on every response, error pages and refused hosts included."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS if k.encode() not in present]
                msg = {**msg, "headers": [*msg.get("headers", []), *extra]}
            await send(msg)

        return await self.app(scope, receive, send_with_headers)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def default_allowed_hosts(bind_host: str) -> Tuple[str, ...]:
    """The `Host` names accepted when none are given: the loopback names for a server bound to loopback (a web
    page elsewhere cannot reach it through DNS rebinding), any name otherwise.

    bind_host (str): The address the server listens on.
    RETURNS (Tuple[str, ...]): Host names, or ("*",).
    """
    import ipaddress

    if bind_host.strip("[]").lower() == "localhost":
        return LOOPBACK_HOSTS
    try:
        loopback = ipaddress.ip_address(bind_host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    return LOOPBACK_HOSTS if loopback else ("*",)


def create_app(model, *, settings: Optional[ServeSettings] = None):
    """The ASGI app (FastAPI). The pipeline is loaded here, once.

    model (Union[str, Path, Language]): A pipeline folder, an installed package name, or a loaded pipeline.
    settings (Optional[ServeSettings]): Limits and switches; the defaults if None.
    RETURNS (FastAPI): The app.
    """
    import jinja2
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .. import __version__
    from .fetch import BlockedURL, FetchError, InvalidURL, fetch, page_text

    from starlette.middleware.trustedhost import TrustedHostMiddleware

    settings = settings or ServeSettings()
    nlp = model if hasattr(model, "pipe_names") else load_pipeline(model)
    extractor = Extractor(nlp, batch_size=settings.batch_size, piece_chars=settings.piece_chars)
    model_name = pipeline_name(nlp, None if hasattr(model, "pipe_names") else model)
    page = jinja2.Environment(autoescape=True).from_string(PAGE)
    policy = settings.fetch_policy()

    class TextIn(BaseModel):
        text: str = Field(..., description="The text; any length up to the server's --max-text-chars.")
        html: bool = Field(False, description="Also return the displaCy HTML of the highlighted text.")

    class UrlIn(BaseModel):
        url: str = Field(..., description="An http or https URL of a public web page.")
        html: bool = Field(False, description="Also return the displaCy HTML of the highlighted text.")

    class TermOut(BaseModel):
        text: str = Field(..., description="The first mention, as written.")
        key: str = Field(..., description="The normalised form terms are grouped by.")
        count: int
        offsets: List[Tuple[int, int]] = Field(..., description="Character offsets (start, end) of each mention.")
        labels: List[str]

    class EntityOut(BaseModel):
        start: int
        end: int
        label: str
        text: str

    class ExtractOut(BaseModel):
        characters: int = Field(..., description="Length of the text the offsets refer to.")
        terms: List[TermOut] = Field(..., description="Distinct terms in order of first mention.")
        entities: List[EntityOut]
        html: Optional[str] = None

    class UrlExtractOut(ExtractOut):
        url: str = Field(..., description="The URL as given.")
        final_url: str = Field(..., description="The URL after redirects.")
        redirects: List[str]
        text: str = Field(..., description="The article text extracted from the page.")

    class ErrorOut(BaseModel):
        detail: str

    class HealthOut(BaseModel):
        status: str
        model: str
        pipeline: List[str]

    def errors(*codes: int) -> Dict[int, Dict[str, Any]]:
        text = {400: "A required column is missing", 413: "Too large: body, text or rows over the server's limits",
                422: "Bad input", 502: "The URL could not be fetched",
                503: "The request took longer than the server's --request-timeout"}
        return {c: {"model": ErrorOut, "description": text[c]} for c in codes}

    @asynccontextmanager
    async def lifespan(app):
        yield
        extractor.close()

    class App(FastAPI):
        def build_middleware_stack(self):
            # outside Starlette's own error middleware too, so that a 500 has the headers as well
            return _SecurityHeaders(super().build_middleware_stack())

    # no /docs or /redoc: their pages load Swagger UI and ReDoc from a CDN (blank offline); the schema is enough
    app = App(title="en_tech_ner: technology terms", version=__version__, lifespan=lifespan, docs_url=None,
              redoc_url=None, description="Extract technology terms from text, a web page or a CSV file. "
                                          f"Model: {model_name}.")
    app.add_middleware(_TextGuard)  # inside the body limit, which stops a body before it is all buffered here
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts), www_redirect=False)
    app.state.settings = settings
    app.state.model_name = model_name
    app.state.nlp = nlp
    app.state.extractor = extractor

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path.endswith(".json")

    def render_page(status: int = 200, **values) -> HTMLResponse:
        values.setdefault("text", "")
        values.setdefault("url", "")
        return HTMLResponse(page.render(model=model_name, limits=_limits_note(settings), **values), status_code=status)

    def error_response(request: Request, status: int, message: str, extra: Optional[Dict[str, Any]] = None):
        if wants_json(request):
            return JSONResponse({"detail": message, **(extra or {})}, status_code=status)
        return render_page(status, error=message)

    @app.exception_handler(ServeError)
    async def on_serve_error(request: Request, exc: ServeError):
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        found = exc.errors()
        parts = []
        for err in found:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            msg = err.get("msg", "invalid")
            if err.get("type") == "json_invalid":
                where, msg = "body", f"not valid JSON ({(err.get('ctx') or {}).get('error', 'decode error')})"
            parts.append(f"{where}: {msg}")
        message = "; ".join(parts) or "invalid request"
        # the inputs echoed back are the client's; text that UTF-8 cannot carry must not break the answer
        extra = {"errors": _printable(jsonable_encoder(found, custom_encoder={Exception: str}))}
        return error_response(request, 422, message, extra)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception):
        logger.exception("request failed: %s %s", request.method, request.url.path)
        return error_response(request, 500, f"internal error ({type(exc).__name__}); the server log has the details")

    # --- the work shared by the page and the API ---

    def check_text(text: str, what: str = "the text") -> None:
        if len(text) > settings.max_text_chars:
            raise ServeError(413, f"{what} has {len(text)} characters; the limit is {settings.max_text_chars} "
                                  "(the server's --max-text-chars)")

    async def extract_text(text: str) -> Extraction:
        check_text(text)
        return (await extractor.extract([text], settings.request_timeout))[0]

    async def extract_url(url: str) -> Tuple[Extraction, Any]:
        def get():
            fetched = fetch(url, policy)
            return fetched, page_text(fetched)

        try:
            fetched, text = await run_in_threadpool(get)
        except InvalidURL as e:
            raise ServeError(422, str(e))
        except BlockedURL as e:
            # the URL as given is the user's input (422); a redirect there is the remote server's doing (502)
            raise ServeError(422 if e.hop == 0 else 502, str(e))
        except FetchError as e:
            raise ServeError(502, str(e))
        if not text.strip():
            raise ServeError(422, f"found no article text on {fetched.url}")
        check_text(text, f"the article at {fetched.url}")
        return (await extractor.extract([text], settings.request_timeout))[0], fetched

    async def extract_csv(upload: UploadFile, column: str) -> Response:
        data = await upload.read()
        table = await run_in_threadpool(read_csv, data, column=column, max_rows=settings.max_csv_rows,
                                        max_text_chars=settings.max_text_chars)
        good = [row[table.text_index] for row, error in zip(table.rows, table.errors) if error is None]
        results = iter(await extractor.extract(good, settings.request_timeout))
        cells = ["" if error else next(results).terms_cell() for error in table.errors]
        stats: Dict[str, int] = {}
        body = await run_in_threadpool(write_csv, table, cells, stats)
        name = download_name(upload.filename)
        # the counts, so a client can check that nothing was lost: rows = processed rows + error rows
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "X-CSV-Rows": str(len(table.rows)),
            "X-CSV-Error-Rows": str(sum(e is not None for e in table.errors)),
            "X-CSV-Blank-Lines": str(table.blank_lines), "X-CSV-Cells-Neutralised": str(stats["neutralised"])})

    async def as_json(extraction: Extraction, with_html: bool) -> Dict[str, Any]:
        out = extraction.to_dict()
        if with_html:
            out["html"] = await run_in_threadpool(render_entities, extraction)
        return out

    # --- the API ---

    @app.post("/api/extract", response_model=ExtractOut, responses=errors(413, 422, 503), tags=["extract"])
    async def api_extract(body: TextIn):
        """Extract the technology terms of a text."""
        return await as_json(await extract_text(body.text), body.html)

    @app.post("/api/extract-url", response_model=UrlExtractOut, responses=errors(413, 422, 502, 503),
              tags=["extract"])
    async def api_extract_url(body: UrlIn):
        """Fetch a public web page, extract its article text (trafilatura) and the technology terms in it."""
        extraction, fetched = await extract_url(body.url)
        out = await as_json(extraction, body.html)
        out.update(url=body.url, final_url=fetched.url, redirects=fetched.redirects, text=extraction.text)
        return out

    @app.post("/api/extract-csv", response_class=Response, tags=["extract"], responses={
        200: {"content": {"text/csv": {}}, "description": "The CSV with a `tech_terms` column (terms joined by '; ')"},
        **errors(400, 413, 422, 503)})
    async def api_extract_csv(file: UploadFile = File(..., description="A CSV file with a header row"),
                              column: str = Form("text", description="The column holding the text")):
        """Add a `tech_terms` column to a CSV: one output row per input row, other columns and order kept."""
        return await extract_csv(file, column)

    @app.get("/api/health", response_model=HealthOut, tags=["service"])
    async def api_health():
        """The service is up and its pipeline loaded."""
        return {"status": "ok", "model": model_name, "pipeline": list(nlp.pipe_names)}

    # --- the page ---

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home():
        return render_page()

    @app.post("/extract", response_class=HTMLResponse, include_in_schema=False)
    async def page_extract(text: str = Form(...)):
        try:
            extraction = await extract_text(text)
        except ServeError as e:
            return render_page(e.status, error=e.message, text=text[:settings.max_text_chars])
        highlighted = await run_in_threadpool(render_entities, extraction)
        return render_page(result=extraction, highlighted=highlighted, text=text)

    @app.post("/extract-url", response_class=HTMLResponse, include_in_schema=False)
    async def page_extract_url(url: str = Form(...)):
        try:
            extraction, fetched = await extract_url(url)
        except ServeError as e:
            return render_page(e.status, error=e.message, url=url)
        highlighted = await run_in_threadpool(render_entities, extraction)
        return render_page(result=extraction, highlighted=highlighted, url=url, source=fetched.url)

    @app.post("/extract-csv", include_in_schema=False)
    async def page_extract_csv(file: UploadFile = File(...), column: str = Form("text")):
        return await extract_csv(file, column)

    return app


# --- the command --------------------------------------------------------------------------------------------------


@friendly_errors
def serve_command(
    model: str = typer.Option("training/model-best", "--model", "-m", help="Pipeline folder or installed package name"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="Port to listen on"),
    max_body_bytes: int = typer.Option(ServeSettings.max_body_bytes, "--max-body-bytes", min=1,
                                       help="Largest request body (form, JSON, upload)"),
    max_text_chars: int = typer.Option(ServeSettings.max_text_chars, "--max-text-chars", min=1,
                                       help="Most characters in one text, article or CSV cell"),
    max_csv_rows: int = typer.Option(ServeSettings.max_csv_rows, "--max-csv-rows", min=1, help="Most rows in one CSV"),
    fetch_timeout: float = typer.Option(ServeSettings.fetch_timeout, "--fetch-timeout", min=0.1,
                                        help="Seconds to fetch one URL, redirects included"),
    max_page_bytes: int = typer.Option(ServeSettings.max_page_bytes, "--max-page-bytes", min=1,
                                       help="Largest web page fetched"),
    max_redirects: int = typer.Option(ServeSettings.max_redirects, "--max-redirects", min=0, help="Most redirects followed"),
    allow_private_urls: bool = typer.Option(False, "--allow-private-urls",
                                            help="Also fetch loopback and private addresses (tests only: opens the "
                                                 "server's own network to its users)"),
    allow_host: List[str] = typer.Option([], "--allow-host", help="HOST or HOST:PORT exempt from the address "
                                                                   "check, repeatable (e.g. an intranet wiki)"),
    batch_size: int = typer.Option(ServeSettings.batch_size, "--batch-size", min=1, help="Texts per nlp.pipe batch"),
    piece_chars: int = typer.Option(ServeSettings.piece_chars, "--piece-chars", min=1,
                                    help="Texts are processed in pieces of this many characters, concurrent "
                                         "requests taking turns, so a big one does not hold up small ones"),
    request_timeout: float = typer.Option(ServeSettings.request_timeout, "--request-timeout", min=0.1,
                                          help="Seconds one request may take, waiting included; longer is a 503"),
    allowed_hosts: List[str] = typer.Option([], "--allowed-hosts",
                                            help="Host names the Host header may carry, repeatable or comma-separated "
                                                 "('*': any; against DNS rebinding). Default: localhost, 127.0.0.1 "
                                                 "and [::1] when --host is loopback, else any"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level"),
):
    """Serve the web page and the HTTP API for extracting technology terms."""
    import uvicorn

    settings = ServeSettings(max_body_bytes=max_body_bytes, max_text_chars=max_text_chars, max_csv_rows=max_csv_rows,
                             fetch_timeout=fetch_timeout, max_page_bytes=max_page_bytes, max_redirects=max_redirects,
                             allow_private_urls=allow_private_urls, allowed_url_hosts=tuple(allow_host),
                             batch_size=batch_size, piece_chars=piece_chars, request_timeout=request_timeout,
                             allowed_hosts=_host_list(allowed_hosts) or default_allowed_hosts(host))
    app = create_app(model, settings=settings)
    if allow_private_urls:
        typer.echo("warning: --allow-private-urls: URLs on loopback and private addresses will be fetched", err=True)
    shown = f"[{host}]" if ":" in host else host
    if settings.allowed_hosts == ("*",) and not default_allowed_hosts(host) == ("*",):
        typer.echo("warning: --allowed-hosts '*': any Host header is answered (open to DNS rebinding)", err=True)
    typer.echo(f"Serving {app.state.model_name} on http://{shown}:{port} (API schema: /openapi.json)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False)


def _host_list(values: Sequence[str]) -> Tuple[str, ...]:
    return tuple(h.strip().lower() for value in values for h in value.split(",") if h.strip())


__all__ = ["ServeSettings", "ServeError", "Extraction", "Extractor", "create_app", "serve_command", "split_text",
           "read_csv", "write_csv", "load_pipeline"]
