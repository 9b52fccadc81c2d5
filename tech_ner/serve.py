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
import concurrent.futures
import csv
import io
import logging
import queue
import re
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import typer

from .problems import InputError, friendly_errors

logger = logging.getLogger("tech_ner.serve")

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
    batch_size (int): Texts per `nlp.pipe` batch; a CSV is processed in slices of this size.
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

    def __post_init__(self):
        for name in ("max_body_bytes", "max_text_chars", "max_csv_rows", "max_page_bytes", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServeSettings.{name} must be an integer >= 1; got {value!r}")
        if not self.fetch_timeout > 0:
            raise ValueError(f"ServeSettings.fetch_timeout must be > 0; got {self.fetch_timeout!r}")
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

    from . import registrations  # noqa: F401  (the tokenizer and span getter the config names)

    try:
        return spacy.load(model)
    except OSError as e:
        if "[E050]" in str(e) or "[E053]" in str(e):
            raise InputError(None, None, f"--model {model}: no pipeline folder or installed pipeline package of that "
                                         "name; train one (`spacy project run train`) or pass a folder")
        raise


def pipeline_name(nlp) -> str:
    meta = nlp.meta or {}
    name = meta.get("name") or "pipeline"
    lang = meta.get("lang") or nlp.lang
    version = meta.get("version")
    full = name if name.startswith(f"{lang}_") else f"{lang}_{name}"
    return f"{full} {version}" if version else full


def terms_function(nlp) -> Callable:
    """How to read the distinct terms of a Doc: the pipeline's `tech_terms` component, or every entity.

    RETURNS (Callable[[Doc], List[TechTerm]]): The function.
    """
    from .component import collect_terms

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


class Extractor:
    """Runs the pipeline in one worker thread, batching the texts of every request that waits.

    nlp (Language): The pipeline.
    batch_size (int): Texts per `nlp.pipe` batch.
    max_batch_texts (int): The most texts taken into one batch of requests.
    """

    def __init__(self, nlp, *, batch_size: int = 32, max_batch_texts: int = 128):
        self.nlp = nlp
        self.batch_size = batch_size
        self.max_batch_texts = max_batch_texts
        self._terms = terms_function(nlp)
        self._jobs: "queue.Queue[Optional[Tuple[List[str], concurrent.futures.Future]]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    def submit(self, texts: Sequence[str]) -> "concurrent.futures.Future[List[Extraction]]":
        """Queue texts for the worker. RETURNS (Future[List[Extraction]]): one Extraction per text."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="tech-ner-nlp", daemon=True)
                self._thread.start()
        self._jobs.put((list(texts), future))
        return future

    async def extract(self, texts: Sequence[str]) -> List[Extraction]:
        """Process texts without blocking the event loop, in slices of `batch_size` so that other
        requests are served between the slices of a large upload.

        RETURNS (List[Extraction]): One per text, in order.
        """
        out: List[Extraction] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(await asyncio.wrap_future(self.submit(texts[i:i + self.batch_size])))
        return out

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout=30)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            size = len(job[0])
            while size < self.max_batch_texts:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(more)
                size += len(more[0])
            self._run(batch)

    def _run(self, batch: List[Tuple[List[str], concurrent.futures.Future]]) -> None:
        live = [(texts, fut) for texts, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._process([t for texts, _ in live for t in texts])
        except Exception:
            # one request's text must not fail the others: retry each alone
            for texts, fut in live:
                try:
                    fut.set_result(self._process(texts))
                except Exception as e:  # noqa: BLE001  (handed to the request that sent it)
                    fut.set_exception(e)
            return
        i = 0
        for texts, fut in live:
            fut.set_result(results[i:i + len(texts)])
            i += len(texts)

    def _process(self, texts: List[str]) -> List[Extraction]:
        from spacy.tokens import Doc

        max_chars = self.nlp.max_length
        pieces_of = [split_text(t, max_chars) if len(t) > max_chars else [t] for t in texts]
        flat = [p for pieces in pieces_of for p in pieces]
        docs = iter(self.nlp.pipe(flat, batch_size=self.batch_size))
        out = []
        for text, pieces in zip(texts, pieces_of):
            parts = [next(docs) for _ in pieces]
            doc = parts[0] if len(parts) == 1 else Doc.from_docs(parts, ensure_whitespace=False,
                                                                   exclude=["tensor", "user_data"])
            assert doc.text == text, "pieces of a long text must join back to it"
            entities = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
            out.append(Extraction(text=text, entities=entities, terms=self._terms(doc)))
        return out


# --- CSV ----------------------------------------------------------------------------------------------------------


@dataclass
class CsvTable:
    """A parsed CSV upload.

    header (List[str]): The column names.
    rows (List[List[str]]): The data rows, each as long as the header.
    text_index (int): The position of the text column.
    delimiter (str): The delimiter found in the header.
    lineterminator (str): "\\r\\n" or "\\n", as in the upload.
    bom (bool): Whether the upload started with a UTF-8 byte order mark.
    """

    header: List[str]
    rows: List[List[str]]
    text_index: int
    delimiter: str = ","
    lineterminator: str = "\r\n"
    bom: bool = False


def _decode_upload(data: bytes) -> Tuple[str, bool]:
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8-sig"), bom
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), False  # spreadsheet exports on Windows
    except UnicodeDecodeError:
        raise ServeError(422, "the CSV file is neither UTF-8 nor Windows-1252 text")


def read_csv(data: bytes, *, column: str = "text", max_rows: int = 10_000, max_text_chars: int = 500_000) -> CsvTable:
    """Parse a CSV upload that has a text column; the delimiter (, ; tab |) is the one that finds the column.

    data (bytes): The file.
    column (str): The name of the text column (exact, else ignoring case and surrounding spaces).
    max_rows (int): The most data rows.
    max_text_chars (int): The most characters in one text cell.
    RETURNS (CsvTable): The table.
    Raises ServeError: 400 no such column, 413 too many rows or a cell too long, 422 a malformed file.
    """
    text, bom = _decode_upload(data)
    if "\x00" in text:
        raise ServeError(422, "the CSV file contains NUL bytes: is it a binary file?")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        raise ServeError(400, f"the CSV file has no header row; it needs a {column!r} column")
    wanted = column.strip().casefold()
    delimiter, index, header = ",", -1, next(csv.reader([first_line]))
    for candidate in CSV_DELIMITERS:
        fields = next(csv.reader([first_line], delimiter=candidate))
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
    # a long text cell is legal CSV; raise the csv module's per-field limit (a process-wide setting) to fit it
    if csv.field_size_limit() < max_text_chars + 1:
        csv.field_size_limit(max_text_chars + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: List[List[str]] = []
    try:
        header = next(reader)
        for row in reader:
            if not row:  # a blank line is no row
                continue
            if len(rows) >= max_rows:
                raise ServeError(413, f"the CSV has more than {max_rows} rows (the server's --max-csv-rows)")
            if len(row) > len(header):
                raise ServeError(422, f"CSV line {reader.line_num}: {len(row)} fields, but the header has {len(header)}")
            row = row + [""] * (len(header) - len(row))
            if len(row[index]) > max_text_chars:
                raise ServeError(413, f"CSV line {reader.line_num}: the text has {len(row[index])} characters; "
                                      f"the limit is {max_text_chars} (--max-text-chars)")
            rows.append(row)
    except csv.Error as e:
        raise ServeError(422, f"CSV line {reader.line_num}: {e}")
    newline = text.find("\n")
    lineterminator = "\r\n" if newline > 0 and text[newline - 1] == "\r" else "\n"
    return CsvTable(header=header, rows=rows, text_index=index, delimiter=delimiter, lineterminator=lineterminator, bom=bom)


def write_csv(table: CsvTable, cells: Sequence[str]) -> bytes:
    """The table with a `tech_terms` column: added last, or filled in if the upload has one already.

    table (CsvTable): The upload.
    cells (Sequence[str]): The terms of each row, joined with "; ".
    RETURNS (bytes): The CSV, UTF-8 (with a byte order mark if the upload had one).
    """
    header = list(table.header)
    names = [h.strip() for h in header]
    if TERMS_COLUMN in names:
        at = names.index(TERMS_COLUMN)
    else:
        at = len(header)
        header.append(TERMS_COLUMN)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=table.delimiter, lineterminator=table.lineterminator)
    writer.writerow(header)
    for row, cell in zip(table.rows, cells):
        row = list(row)
        if at == len(row):
            row.append(cell)
        else:
            row[at] = cell
        writer.writerow(row)
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
<p class="note">Limits: {{ limits }}.</p>
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

    from . import __version__
    from .fetch import BlockedURL, FetchError, InvalidURL, fetch, page_text

    settings = settings or ServeSettings()
    nlp = model if hasattr(model, "pipe_names") else load_pipeline(model)
    extractor = Extractor(nlp, batch_size=settings.batch_size)
    model_name = pipeline_name(nlp)
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
                422: "Bad input", 502: "The URL could not be fetched"}
        return {c: {"model": ErrorOut, "description": text[c]} for c in codes}

    @asynccontextmanager
    async def lifespan(app):
        yield
        extractor.close()

    app = FastAPI(title="en_tech_ner: technology terms", version=__version__, lifespan=lifespan,
                  description="Extract technology terms from text, a web page or a CSV file. "
                              f"Model: {model_name}.")
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.settings = settings
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
        extra = {"errors": jsonable_encoder(found, custom_encoder={Exception: str})}
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
        return (await extractor.extract([text]))[0]

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
        return (await extractor.extract([text]))[0], fetched

    async def extract_csv(upload: UploadFile, column: str) -> Response:
        data = await upload.read()
        table = await run_in_threadpool(read_csv, data, column=column, max_rows=settings.max_csv_rows,
                                        max_text_chars=settings.max_text_chars)
        results = await extractor.extract([row[table.text_index] for row in table.rows])
        body = await run_in_threadpool(write_csv, table, [r.terms_cell() for r in results])
        name = download_name(upload.filename)
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def as_json(extraction: Extraction, with_html: bool) -> Dict[str, Any]:
        out = extraction.to_dict()
        if with_html:
            out["html"] = await run_in_threadpool(render_entities, extraction)
        return out

    # --- the API ---

    @app.post("/api/extract", response_model=ExtractOut, responses=errors(413, 422), tags=["extract"])
    async def api_extract(body: TextIn):
        """Extract the technology terms of a text."""
        return await as_json(await extract_text(body.text), body.html)

    @app.post("/api/extract-url", response_model=UrlExtractOut, responses=errors(413, 422, 502), tags=["extract"])
    async def api_extract_url(body: UrlIn):
        """Fetch a public web page, extract its article text (trafilatura) and the technology terms in it."""
        extraction, fetched = await extract_url(body.url)
        out = await as_json(extraction, body.html)
        out.update(url=body.url, final_url=fetched.url, redirects=fetched.redirects, text=extraction.text)
        return out

    @app.post("/api/extract-csv", response_class=Response, tags=["extract"], responses={
        200: {"content": {"text/csv": {}}, "description": "The CSV with a `tech_terms` column (terms joined by '; ')"},
        **errors(400, 413, 422)})
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
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level"),
):
    """Serve the web page and the HTTP API for extracting technology terms."""
    import uvicorn

    settings = ServeSettings(max_body_bytes=max_body_bytes, max_text_chars=max_text_chars, max_csv_rows=max_csv_rows,
                             fetch_timeout=fetch_timeout, max_page_bytes=max_page_bytes, max_redirects=max_redirects,
                             allow_private_urls=allow_private_urls, allowed_url_hosts=tuple(allow_host),
                             batch_size=batch_size)
    app = create_app(model, settings=settings)
    if allow_private_urls:
        typer.echo("warning: --allow-private-urls: URLs on loopback and private addresses will be fetched", err=True)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"Serving {pipeline_name(app.state.nlp)} on http://{shown}:{port} (API schema: /openapi.json)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False)


__all__ = ["ServeSettings", "ServeError", "Extraction", "Extractor", "create_app", "serve_command", "split_text",
           "read_csv", "write_csv", "load_pipeline"]
