"""The routes: the JSON API under /api/ and the page, both on the same work (a text, a URL, a CSV upload), and the
error handlers that answer JSON under /api/ and the page elsewhere.

Each route reads what `create_app` put in `app.state`: settings, nlp, extractor, model_name, page, policy.
"""

import logging
from typing import Any, Callable, Dict, Optional, Tuple, Type

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..article import page_text
from ..fetch import BlockedURL, FetchError, InvalidURL, fetch
from .csv_table import download_name, read_csv, write_csv
from .guards import printable_json
from .page import limits_note, render_entities
from .schemas import ExtractOut, HealthOut, TextIn, UrlExtractOut, UrlIn, errors
from .settings import ServeError
from .worker import Extraction

logger = logging.getLogger("tech_ner.apps.web")
router = APIRouter()


# --- answers: JSON under /api/, the page elsewhere ---


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith(".json")


def render_page(request: Request, status: int = 200, **values) -> HTMLResponse:
    state = request.app.state
    values.setdefault("text", "")
    values.setdefault("url", "")
    return HTMLResponse(
        state.page.render(model=state.model_name, limits=limits_note(state.settings), **values), status_code=status
    )


def error_response(request: Request, status: int, message: str, extra: Optional[Dict[str, Any]] = None):
    if wants_json(request):
        return JSONResponse({"detail": message, **(extra or {})}, status_code=status)
    return render_page(request, status, error=message)


async def on_serve_error(request: Request, exc: ServeError):
    return error_response(request, exc.status, exc.message)


async def on_http_error(request: Request, exc: StarletteHTTPException):
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(request, exc.status_code, message)


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
    extra = {"errors": printable_json(jsonable_encoder(found, custom_encoder={Exception: str}))}
    return error_response(request, 422, message, extra)


async def on_crash(request: Request, exc: Exception):
    logger.exception("request failed: %s %s", request.method, request.url.path)
    return error_response(request, 500, f"internal error ({type(exc).__name__}); the server log has the details")


ERROR_HANDLERS: Tuple[Tuple[Type[Exception], Callable[..., Any]], ...] = (
    (ServeError, on_serve_error),
    (StarletteHTTPException, on_http_error),
    (RequestValidationError, on_invalid),
    (Exception, on_crash),
)


# --- the work shared by the page and the API ---


def check_text(request: Request, text: str, what: str = "the text") -> None:
    limit = request.app.state.settings.max_text_chars
    if len(text) > limit:
        raise ServeError(
            413, f"{what} has {len(text)} characters; the limit is {limit} (the server's --max-text-chars)"
        )


async def extract_texts(request: Request, texts) -> list:
    state = request.app.state
    return await state.extractor.extract(texts, state.settings.request_timeout)


async def extract_text(request: Request, text: str) -> Extraction:
    check_text(request, text)
    return (await extract_texts(request, [text]))[0]


async def extract_url(request: Request, url: str) -> Tuple[Extraction, Any]:
    policy = request.app.state.policy

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
    check_text(request, text, f"the article at {fetched.url}")
    return (await extract_texts(request, [text]))[0], fetched


async def extract_csv(request: Request, upload: UploadFile, column: str) -> Response:
    settings = request.app.state.settings
    data = await upload.read()
    table = await run_in_threadpool(
        read_csv, data, column=column, max_rows=settings.max_csv_rows, max_text_chars=settings.max_text_chars
    )
    good = [row[table.text_index] for row, error in zip(table.rows, table.errors) if error is None]
    results = iter(await extract_texts(request, good))
    cells = ["" if error else next(results).terms_cell() for error in table.errors]
    stats: Dict[str, int] = {}
    body = await run_in_threadpool(write_csv, table, cells, stats)
    name = download_name(upload.filename)
    # the counts, so a client can check that nothing was lost: rows = processed rows + error rows
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-CSV-Rows": str(len(table.rows)),
            "X-CSV-Error-Rows": str(sum(e is not None for e in table.errors)),
            "X-CSV-Blank-Lines": str(table.blank_lines),
            "X-CSV-Cells-Neutralised": str(stats["neutralised"]),
        },
    )


async def as_json(extraction: Extraction, with_html: bool) -> Dict[str, Any]:
    out = extraction.to_dict()
    if with_html:
        out["html"] = await run_in_threadpool(render_entities, extraction)
    return out


# --- the API ---


@router.post("/api/extract", response_model=ExtractOut, responses=errors(413, 422, 503), tags=["extract"])
async def api_extract(request: Request, body: TextIn):
    """Extract the technology terms of a text."""
    return await as_json(await extract_text(request, body.text), body.html)


@router.post("/api/extract-url", response_model=UrlExtractOut, responses=errors(413, 422, 502, 503), tags=["extract"])
async def api_extract_url(request: Request, body: UrlIn):
    """Fetch a public web page, extract its article text (trafilatura) and the technology terms in it."""
    extraction, fetched = await extract_url(request, body.url)
    out = await as_json(extraction, body.html)
    out.update(url=body.url, final_url=fetched.url, redirects=fetched.redirects, text=extraction.text)
    return out


@router.post(
    "/api/extract-csv",
    response_class=Response,
    tags=["extract"],
    responses={
        200: {"content": {"text/csv": {}}, "description": "The CSV with a `tech_terms` column (terms joined by '; ')"},
        **errors(400, 413, 422, 503),
    },
)
async def api_extract_csv(
    request: Request,
    file: UploadFile = File(..., description="A CSV file with a header row"),
    column: str = Form("text", description="The column holding the text"),
):
    """Add a `tech_terms` column to a CSV: one output row per input row, other columns and order kept."""
    return await extract_csv(request, file, column)


@router.get("/api/health", response_model=HealthOut, tags=["service"])
async def api_health(request: Request):
    """The service is up and its pipeline loaded."""
    state = request.app.state
    return {"status": "ok", "model": state.model_name, "pipeline": list(state.nlp.pipe_names)}


# --- the page ---


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request):
    return render_page(request)


@router.post("/extract", response_class=HTMLResponse, include_in_schema=False)
async def page_extract(request: Request, text: str = Form(...)):
    try:
        extraction = await extract_text(request, text)
    except ServeError as e:
        return render_page(request, e.status, error=e.message, text=text[: request.app.state.settings.max_text_chars])
    highlighted = await run_in_threadpool(render_entities, extraction)
    return render_page(request, result=extraction, highlighted=highlighted, text=text)


@router.post("/extract-url", response_class=HTMLResponse, include_in_schema=False)
async def page_extract_url(request: Request, url: str = Form(...)):
    try:
        extraction, fetched = await extract_url(request, url)
    except ServeError as e:
        return render_page(request, e.status, error=e.message, url=url)
    highlighted = await run_in_threadpool(render_entities, extraction)
    return render_page(request, result=extraction, highlighted=highlighted, url=url, source=fetched.url)


@router.post("/extract-csv", include_in_schema=False)
async def page_extract_csv(request: Request, file: UploadFile = File(...), column: str = Form("text")):
    return await extract_csv(request, file, column)
