"""`tech-ner serve`: the web page and JSON API (tech_ner/apps/web) on uvicorn."""

from typing import List, Sequence, Tuple

import typer

from ..apps.web.settings import ServeSettings, default_allowed_hosts
from ..files.problems import friendly_errors


@friendly_errors
def serve_command(
    model: str = typer.Option("training/model-best", "--model", "-m", help="Pipeline folder or installed package name"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="Port to listen on"),
    max_body_bytes: int = typer.Option(
        ServeSettings.max_body_bytes, "--max-body-bytes", min=1, help="Largest request body (form, JSON, upload)"
    ),
    max_text_chars: int = typer.Option(
        ServeSettings.max_text_chars, "--max-text-chars", min=1, help="Most characters in one text, article or CSV cell"
    ),
    max_csv_rows: int = typer.Option(ServeSettings.max_csv_rows, "--max-csv-rows", min=1, help="Most rows in one CSV"),
    fetch_timeout: float = typer.Option(
        ServeSettings.fetch_timeout, "--fetch-timeout", min=0.1, help="Seconds to fetch one URL, redirects included"
    ),
    max_page_bytes: int = typer.Option(
        ServeSettings.max_page_bytes, "--max-page-bytes", min=1, help="Largest web page fetched"
    ),
    max_redirects: int = typer.Option(
        ServeSettings.max_redirects, "--max-redirects", min=0, help="Most redirects followed"
    ),
    allow_private_urls: bool = typer.Option(
        False,
        "--allow-private-urls",
        help="Also fetch loopback and private addresses (tests only: opens the server's own network to its users)",
    ),
    allow_host: List[str] = typer.Option(
        [], "--allow-host", help="HOST or HOST:PORT exempt from the address check, repeatable (e.g. an intranet wiki)"
    ),
    batch_size: int = typer.Option(ServeSettings.batch_size, "--batch-size", min=1, help="Texts per nlp.pipe batch"),
    piece_chars: int = typer.Option(
        ServeSettings.piece_chars,
        "--piece-chars",
        min=1,
        help="Texts are processed in pieces of this many characters, concurrent "
        "requests taking turns, so a big one does not hold up small ones",
    ),
    request_timeout: float = typer.Option(
        ServeSettings.request_timeout,
        "--request-timeout",
        min=0.1,
        help="Seconds one request may take, waiting included; longer is a 503",
    ),
    allowed_hosts: List[str] = typer.Option(
        [],
        "--allowed-hosts",
        help="Host names the Host header may carry, repeatable or comma-separated "
        "('*': any; against DNS rebinding). Default: localhost, 127.0.0.1 "
        "and [::1] when --host is loopback, else any",
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level"),
):
    """Serve the web page and the HTTP API for extracting technology terms."""
    import uvicorn

    from ..apps.web.app import create_app

    settings = ServeSettings(
        max_body_bytes=max_body_bytes,
        max_text_chars=max_text_chars,
        max_csv_rows=max_csv_rows,
        fetch_timeout=fetch_timeout,
        max_page_bytes=max_page_bytes,
        max_redirects=max_redirects,
        allow_private_urls=allow_private_urls,
        allowed_url_hosts=tuple(allow_host),
        batch_size=batch_size,
        piece_chars=piece_chars,
        request_timeout=request_timeout,
        allowed_hosts=_host_list(allowed_hosts) or default_allowed_hosts(host),
    )
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
