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

Texts longer than the piece size are cut by the shared inference layer
(`apps/inference.py`: `split_text`), the pieces processed and their entities
merged back (`merge_pieces`), so every offset refers to the text as given.

Modules: `app` (this factory), `routes` (the API, the page, the error
handlers), `schemas` (the API's models), `worker` (the pipeline's thread),
`csv_table` (CSV in and out), `guards` (middleware), `page` (the HTML),
`settings` (limits and switches).
"""

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional, Union

import jinja2
from fastapi import FastAPI
from spacy.language import Language
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ... import __version__
from ..inference import load_pipeline
from .guards import BodyLimit, SecurityHeaders, TextGuard
from .page import PAGE, pipeline_name
from .routes import ERROR_HANDLERS, router
from .settings import ServeSettings
from .worker import Extractor


class _App(FastAPI):
    def build_middleware_stack(self):
        # outside Starlette's own error middleware too, so that a 500 has the headers as well
        return SecurityHeaders(super().build_middleware_stack())


def create_app(model: Union[str, Path, Language], *, settings: Optional[ServeSettings] = None) -> FastAPI:
    """The ASGI app (FastAPI). The pipeline is loaded here, once.

    model (Union[str, Path, Language]): A pipeline folder, an installed package name, or a loaded pipeline.
    settings (Optional[ServeSettings]): Limits and switches; the defaults if None.
    RETURNS (FastAPI): The app.
    """
    settings = settings or ServeSettings()
    if isinstance(model, (str, Path)):
        nlp, source = load_pipeline(model, clean_docs=False), model
    else:
        nlp, source = model, None
    extractor = Extractor(nlp, batch_size=settings.batch_size, piece_chars=settings.piece_chars)
    model_name = pipeline_name(nlp, source)

    @asynccontextmanager
    async def lifespan(app):
        yield
        extractor.close()

    # no /docs or /redoc: their pages load Swagger UI and ReDoc from a CDN (blank offline); the schema is enough
    app = _App(
        title="en_tech_ner: technology terms",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description=f"Extract technology terms from text, a web page or a CSV file. Model: {model_name}.",
    )
    app.add_middleware(TextGuard)  # inside the body limit, which stops a body before it is all buffered here
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts), www_redirect=False)
    app.state.settings = settings
    app.state.model_name = model_name
    app.state.nlp = nlp
    app.state.extractor = extractor
    app.state.page = jinja2.Environment(autoescape=True).from_string(PAGE)
    app.state.policy = settings.fetch_policy()
    for exc_class, handler in ERROR_HANDLERS:
        app.add_exception_handler(exc_class, handler)
    app.include_router(router)
    return app
