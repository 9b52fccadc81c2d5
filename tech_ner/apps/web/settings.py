"""The web app's limits and switches (`ServeSettings`), the error it answers with (`ServeError`), and the
`Host` names it accepts by default."""

from dataclasses import dataclass
from typing import Tuple


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
        for name in ("max_body_bytes", "max_text_chars", "max_csv_rows", "max_page_bytes", "batch_size", "piece_chars"):
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
        from ..fetch import FetchPolicy

        return FetchPolicy(
            timeout=self.fetch_timeout,
            max_bytes=self.max_page_bytes,
            max_redirects=self.max_redirects,
            allow_private=self.allow_private_urls,
            allowed_hosts=frozenset(self.allowed_url_hosts),
        )


class ServeError(Exception):
    """An error answered with `status` and `message` (JSON under /api/, the page elsewhere)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
