"""Fetch a web page safely for `tech-ner serve`, and extract its article text.

A server that fetches URLs for its users must not become their way into its
own network (server-side request forgery). So:

* only `http` and `https` URLs, with a host name;
* the host is resolved here, and every address it resolves to must be public:
  loopback, private, link-local (169.254.169.254 is the cloud metadata
  service), multicast, reserved and unspecified addresses are refused, also
  when written as IPv4-mapped IPv6;
* the connection goes to the address that was checked (no second DNS look-up
  that could answer differently), with the host name kept for TLS and `Host:`;
* redirects are followed by hand, at most `max_redirects`, and each hop is
  checked like the first;
* no proxy from the environment is used (it would connect on our behalf,
  unchecked);
* one deadline covers the whole fetch, redirects included, and a watchdog
  shuts the socket when it passes, so a server that drips bytes cannot hold a
  worker; the body is streamed and the fetch stops once it passes `max_bytes`.

`FetchPolicy.allow_private` turns the address check off (tests against a local
server); `allowed_hosts` exempts named hosts only, e.g. an intranet wiki, or
in tests the first hop of a redirect whose target must still be refused.

Errors: `InvalidURL` (the URL as given is unusable), `BlockedURL` (a refused
address; `hop` says whether it was the URL as given, 0, or a redirect) and
`FetchError`, their base, for everything that happens once a server is
contacted. Only the standard library is used for the fetch; trafilatura
extracts the text.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Callable, FrozenSet, List, Optional, Sequence, Tuple, Union
from urllib.parse import SplitResult, quote, urljoin, urlsplit

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Resolver = Callable[..., list]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
USER_AGENT = "en_tech_ner (tech-ner serve; +https://spacy.io)"


class FetchError(Exception):
    """The page could not be fetched. str() is the message for the user."""


class InvalidURL(FetchError):
    """The URL as given cannot be fetched: wrong scheme, no host, malformed."""


class BlockedURL(FetchError):
    """The URL's host resolves to an address that is not fetched.

    hop (int): 0 for the URL as given, n for the n-th redirect.
    """

    def __init__(self, message: str, hop: int = 0):
        super().__init__(message)
        self.hop = hop


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may do.

    timeout (float): Seconds for the whole fetch, redirects included.
    max_bytes (int): The most bytes of page body read; a larger page is an error.
    max_redirects (int): The most redirects followed.
    allow_private (bool): Fetch from any address (tests against a local server only).
    allowed_hosts (FrozenSet[str]): Hosts exempt from the address check, as `host` or `host:port`.
    user_agent (str): The User-Agent header sent.
    """

    timeout: float = 10.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    allow_private: bool = False
    allowed_hosts: FrozenSet[str] = frozenset()
    user_agent: str = USER_AGENT


@dataclass
class Page:
    """A fetched page.

    url (str): The final URL, after redirects.
    status (int): The HTTP status of the final response.
    content_type (str): The media type, lower case, without parameters.
    charset (Optional[str]): The charset the server declared, if any.
    body (bytes): The body, at most `max_bytes`.
    redirects (List[str]): The URLs redirected from, in order.
    """

    url: str
    status: int
    content_type: str
    charset: Optional[str]
    body: bytes
    redirects: List[str] = field(default_factory=list)


def refusal_reason(ip: IPAddress) -> Optional[str]:
    """Why an address is not fetched from.

    ip (IPAddress): The address.
    RETURNS (Optional[str]): e.g. "a loopback address"; None if the address is public.
    """
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def parse_url(url: str) -> SplitResult:
    """Check the form of a URL: http or https, with a host.

    url (str): The URL.
    RETURNS (SplitResult): The parsed URL.
    Raises InvalidURL.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL("no URL given")
    url = url.strip()
    if any(c in url for c in "\r\n\t\x00") or any(c.isspace() for c in url):
        raise InvalidURL(f"{url!r} is not a valid URL: it contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError as e:
        raise InvalidURL(f"{url!r} is not a valid URL: {e}")
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "no scheme"
        raise InvalidURL(f"{url!r}: only http:// and https:// URLs are fetched, not {shown}")
    if not parts.hostname:
        raise InvalidURL(f"{url!r} has no host name")
    if port == 0:
        raise InvalidURL(f"{url!r}: port 0 is not a valid port")
    return parts


def _host_allowed(parts: SplitResult, allowed_hosts: FrozenSet[str]) -> bool:
    if not allowed_hosts:
        return False
    host = parts.hostname or ""
    port = parts.port or _default_port(parts.scheme.lower())
    shown = f"[{host}]" if ":" in host else host
    return host in allowed_hosts or f"{shown}:{port}" in allowed_hosts or f"{host}:{port}" in allowed_hosts


def check_url(
    url: str, policy: FetchPolicy = FetchPolicy(), *, hop: int = 0, resolve: Resolver = socket.getaddrinfo
) -> Tuple[SplitResult, List[IPAddress]]:
    """Check a URL before fetching it: its form, then every address its host resolves to.

    url (str): The URL.
    policy (FetchPolicy): `allow_private` and `allowed_hosts` are read.
    hop (int): 0 for the URL as given, n for the n-th redirect (kept on BlockedURL).
    resolve (Resolver): `socket.getaddrinfo` or a stand-in with its signature.
    RETURNS (Tuple[SplitResult, List[IPAddress]]): The parsed URL and the addresses to connect to.
    Raises InvalidURL, BlockedURL, or FetchError if the host does not resolve.
    """
    parts = parse_url(url)
    host = parts.hostname
    port = parts.port or _default_port(parts.scheme.lower())
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise FetchError(f"could not resolve the host {host!r}: {getattr(e, 'strerror', None) or e}")
    addresses: List[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])  # drop an IPv6 zone id
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchError(f"could not resolve the host {host!r}: no addresses")
    if policy.allow_private or _host_allowed(parts, policy.allowed_hosts):
        return parts, addresses
    for ip in addresses:  # one refused address refuses the host: a resolver may answer either
        reason = refusal_reason(ip)
        if reason is not None:
            where = "the URL" if hop == 0 else f"redirect {hop} ({url})"
            raise BlockedURL(
                f"refused to fetch {where}: {host} is {reason} ({ip}); only public addresses are fetched", hop
            )
    return parts, addresses


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to an address already checked, not to a fresh look-up of the host."""

    def __init__(self, host: str, port: int, ip: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._pinned_ip = str(ip)
        # http.client calls this hook with (host, port); connect to the checked address instead
        self._create_connection = self._connect_pinned

    def _connect_pinned(self, address, timeout=None, source_address=None):
        return socket.create_connection((self._pinned_ip, address[1]), timeout, source_address)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified for the host name (SNI)."""

    def __init__(self, host: str, port: int, ip: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._pinned_ip = str(ip)
        self._create_connection = self._connect_pinned

    def _connect_pinned(self, address, timeout=None, source_address=None):
        return socket.create_connection((self._pinned_ip, address[1]), timeout, source_address)


def _request_target(parts: SplitResult) -> str:
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return f"{path}?{query}" if query else path


def _media_type(header: Optional[str]) -> Tuple[str, Optional[str]]:
    if not header:
        return "", None
    msg = Message()
    msg["content-type"] = header
    return msg.get_content_type().lower(), msg.get_content_charset()


class _Deadline:
    """Seconds left of the fetch, and a watchdog that shuts the socket when none are."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise FetchError(f"the page took longer than {self.seconds:g} s to fetch")
        return left

    def watch(self, sock: socket.socket) -> threading.Timer:
        def shut():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv, unlike close()
            except OSError:
                pass

        timer = threading.Timer(max(self.left(), 0.0), shut)
        timer.daemon = True
        timer.start()
        return timer


def _connect(parts: SplitResult, addresses: Sequence[IPAddress], deadline: _Deadline) -> http.client.HTTPConnection:
    cls = _PinnedHTTPSConnection if parts.scheme.lower() == "https" else _PinnedConnection
    port = parts.port or _default_port(parts.scheme.lower())
    last: Optional[BaseException] = None
    for ip in addresses:
        conn = cls(parts.hostname or "", port, ip, timeout=deadline.left())
        try:
            conn.connect()
            return conn
        except (OSError, ssl.SSLError) as e:
            conn.close()
            last = e
    raise FetchError(f"could not connect to {parts.hostname}: {last}")


def _read_body(resp: http.client.HTTPResponse, sock: socket.socket, policy: FetchPolicy, deadline: _Deadline) -> bytes:
    length = resp.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > policy.max_bytes:
        raise FetchError(f"the page is larger than {policy.max_bytes} bytes ({int(length)} bytes)")
    chunks: List[bytes] = []
    size = 0
    while True:
        sock.settimeout(deadline.left())
        # read1: at most one read from the socket, so the deadline is checked between drips
        chunk = resp.read1(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > policy.max_bytes:
            raise FetchError(f"the page is larger than {policy.max_bytes} bytes (stopped reading)")
        chunks.append(chunk)
    deadline.left()  # an end of data caused by the watchdog is a time-out, not the end of the page
    if resp.length:  # http.client counts down a declared Content-Length; bytes still due means cut short
        raise FetchError(f"the connection closed {resp.length} bytes before the end of the page")
    return b"".join(chunks)


def fetch(url: str, policy: FetchPolicy = FetchPolicy(), *, resolve: Resolver = socket.getaddrinfo) -> Page:
    """GET a page, checking the URL and every redirect, within the policy's time and size limits.

    url (str): An http or https URL.
    policy (FetchPolicy): The limits and the address rules.
    resolve (Resolver): `socket.getaddrinfo` or a stand-in (tests).
    RETURNS (Page): The final response with a 2xx status.
    Raises InvalidURL, BlockedURL or FetchError.
    """
    deadline = _Deadline(policy.timeout)
    redirects: List[str] = []
    current = url.strip() if isinstance(url, str) else url
    for hop in range(policy.max_redirects + 1):
        try:
            parts, addresses = check_url(current, policy, hop=hop, resolve=resolve)
        except InvalidURL as e:
            if hop == 0:
                raise
            raise FetchError(f"redirect {hop} leads to a URL that is not fetched: {e}")  # the server's doing
        conn = _connect(parts, addresses, deadline)
        # kept here: http.client lets go of conn.sock once a response that closes the connection arrives
        sock = conn.sock
        watchdog = deadline.watch(sock)
        resp = None
        try:
            conn.request(
                "GET",
                _request_target(parts),
                headers={
                    "User-Agent": policy.user_agent,
                    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
                    "Accept-Encoding": "identity",  # no decompression bombs; the size cap counts real bytes
                    "Connection": "close",
                },
            )
            resp = conn.getresponse()
            if resp.status in REDIRECT_STATUSES:
                location = resp.getheader("Location")
                if not location:
                    raise FetchError(f"{current} answered {resp.status} without a Location to redirect to")
                redirects.append(current)
                current = urljoin(current, location.strip())
                continue
            if not 200 <= resp.status < 300:
                raise FetchError(f"{current} answered {resp.status} {resp.reason}".rstrip())
            content_type, charset = _media_type(resp.getheader("Content-Type"))
            body = _read_body(resp, sock, policy, deadline)
            return Page(
                url=current,
                status=resp.status,
                content_type=content_type,
                charset=charset,
                body=body,
                redirects=redirects,
            )
        except FetchError:
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            deadline.left()  # a watchdog shutdown reads as a time-out, not as a broken connection
            raise FetchError(f"could not fetch {current}: {e or type(e).__name__}")
        finally:
            watchdog.cancel()
            if resp is not None:
                resp.close()
            conn.close()
            sock.close()
    raise FetchError(f"more than {policy.max_redirects} redirects, starting at {url}")
