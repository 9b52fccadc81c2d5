"""`tech-ner serve`: the API and page on FastAPI's TestClient, URL fetching against a local HTTP server on
127.0.0.1, and the address guard. Addresses other than loopback are only ever checked and refused, never
connected to."""

import asyncio
import codecs
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import spacy
from hypothesis import example, given, settings as hsettings, strategies as st

import tech_ner.pipeline.component  # noqa: F401  (the tech_terms factory)
from tech_ner.apps.article import page_text
from tech_ner.apps.fetch import BlockedURL, FetchError, FetchPolicy, InvalidURL, check_url, fetch, refusal_reason
from tech_ner.apps.inference import split_text
from tech_ner.apps.web.app import create_app
from tech_ner.apps.web.csv_table import read_csv, write_csv
from tech_ner.apps.web.settings import ServeSettings

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 fork for its TestClient and warns on import when it finds httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PATTERNS = ["Rust", "Python", "Kubernetes", "PostgreSQL", "GitHub Actions"]
ARTICLE_TEXT = (
    "We rewrote the parser in Rust last spring and kept the Python bindings for the data team. "
    "The PostgreSQL cluster now runs on Kubernetes, which took most of the summer to get right. "
    "Everything is built with GitHub Actions, and the Rust build is the slowest step of all."
)
ARTICLE = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Migration notes</title></head>
<body><nav><a href="/">Home</a> <a href="/about">About Java</a></nav>
<article><h1>Migration notes</h1><p>{ARTICLE_TEXT}</p>
<p>Next year we want to look at the deployment pipeline again, with fewer moving parts and more tests.</p></article>
<footer>Copyright, all rights reserved.</footer></body></html>""".encode("utf-8")


@pytest.fixture
def nlp():
    """A blank pipeline whose entities are certain: an entity_ruler, then tech_terms."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "TECH", "pattern": p} for p in PATTERNS])
    nlp.add_pipe("tech_terms")
    return nlp


@pytest.fixture
def make_client(nlp):
    """make_client(**settings) -> a TestClient of an app on the ruler pipeline."""
    clients = []

    def _make(**values):
        client = TestClient(create_app(nlp, settings=ServeSettings(**values)))
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


class _Handler(BaseHTTPRequestHandler):
    """Routes of the local test server; `server.seen` records (path, Host header) of each request."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        path, _, query = self.path.partition("?")
        if path == "/article":
            self._send(200, "text/html; charset=utf-8", ARTICLE)
        elif path == "/plain":
            self._send(200, "text/plain; charset=utf-8", ARTICLE_TEXT.encode())
        elif path == "/empty":
            self._send(200, "text/html", b"<html><body><script>var x = 1;</script></body></html>")
        elif path == "/image":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        elif path == "/missing":
            self._send(404, "text/html", b"<h1>Not Found</h1>")
        elif path == "/redirect":  # /redirect?TARGET: one hop to TARGET (absolute or relative)
            self.send_response(302)
            self.send_header("Location", query)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            self._stream(b"<p>" + b"x" * 65533, 10)
        elif path == "/huge-streamed":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self._stream(b"<p>" + b"x" * 65533, 200)
        elif path == "/slow":  # drips one byte every 0.1 s, for at most 5 s
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self._stream(b"x", 50, pause=0.1)
        else:
            self._send(404, "text/plain", b"no such route")

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, chunk, times, pause=0.0):
        try:
            for _ in range(times):
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:  # the client stopped reading: what the limits are for
            pass


class Site:
    """A running local server: `url` (http://127.0.0.1:PORT), `port`, and `seen`, its requests."""

    def __init__(self, server):
        self.port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen = server.seen


@pytest.fixture
def site():
    """A local HTTP server on 127.0.0.1, stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Site(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- text --------------------------------------------------------------------------------------------------------


def test_api_extract_returns_terms_counts_and_offsets(client):
    text = "Rust and Python. Rust again, on Kubernetes."
    r = client.post("/api/extract", json={"text": text})
    assert r.status_code == 200
    body = r.json()
    assert [(t["text"], t["count"]) for t in body["terms"]] == [("Rust", 2), ("Python", 1), ("Kubernetes", 1)]
    assert all(text[s:e] == t["text"] for t in body["terms"] for s, e in t["offsets"])
    assert [e["text"] for e in body["entities"]] == ["Rust", "Python", "Rust", "Kubernetes"]
    assert body["characters"] == len(text) and "html" not in body or body["html"] is None


def test_api_extract_html_is_displacy_markup_escaped(client):
    r = client.post("/api/extract", json={"text": "<script>alert(1)</script> Rust", "html": True})
    html = r.json()["html"]
    assert html.count("<mark") == 1 and "Rust" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_empty_text_has_no_terms(client):
    r = client.post("/api/extract", json={"text": ""})
    assert r.status_code == 200 and r.json()["terms"] == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"json": {"txt": "Rust"}}, "text: Field required"),
        ({"json": {"text": 42}}, "text: Input should be a valid string"),
        ({"json": ["Rust"]}, "Input should be a valid dictionary"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "body: not valid JSON"),
    ],
)
def test_api_bad_input_is_422_with_message(client, kwargs, message):
    r = client.post("/api/extract", **kwargs)
    assert r.status_code == 422
    assert message in r.json()["detail"]
    assert r.json()["errors"]


def test_body_over_limit_is_413(make_client):
    client = make_client(max_body_bytes=1000)
    r = client.post("/api/extract", json={"text": "Rust " * 300})
    assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]
    assert client.post("/api/extract", json={"text": "Rust " * 100}).status_code == 200
    # a chunked body, without Content-Length, is counted as it arrives
    r = client.post(
        "/api/extract",
        content=iter([b'{"text": "', b"Rust " * 300, b'"}']),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    r = client.post("/api/extract-csv", files={"file": ("t.csv", b"text\n" + b"Rust rocks\n" * 200)})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["detail"]
    page = client.post("/extract", data={"text": "Rust " * 300})
    assert page.status_code == 413 and "larger than 1000 bytes" in page.text and "<form" in page.text


def test_text_over_limit_is_413(make_client):
    client = make_client(max_text_chars=50)
    r = client.post("/api/extract", json={"text": "Rust " * 11})
    assert r.status_code == 413 and "55 characters; the limit is 50" in r.json()["detail"]


# --- long texts --------------------------------------------------------------------------------------------------


@hsettings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .\n\t!?\"'")), max_size=300), max_chars=st.integers(1, 40))
def test_split_text_joins_back_and_respects_the_limit(text, max_chars):
    pieces = [text[start:end] for start, end in split_text(text, max_chars)]
    assert "".join(pieces) == text
    assert all(len(p) <= max_chars for p in pieces)
    assert all(pieces[:-1])


def test_split_text_prefers_paragraph_breaks():
    text = "One Rust line.\nTwo.\n\nSecond paragraph here.\n\nThird."
    pieces = [text[start:end] for start, end in split_text(text, 25)]
    assert pieces == ["One Rust line.\nTwo.\n\n", "Second paragraph here.\n\n", "Third."]


def test_text_beyond_max_length_is_split_and_offsets_refer_to_the_whole_text(nlp, make_client):
    paragraphs = [f"Paragraph {i} mentions Rust and Python.\nA second line about Kubernetes {i}." for i in range(40)]
    text = "\n\n".join(paragraphs)
    nlp.max_length = 200  # spaCy would refuse the text whole
    client = make_client(max_text_chars=len(text))
    body = client.post("/api/extract", json={"text": text}).json()
    counts = {t["text"]: t["count"] for t in body["terms"]}
    assert counts == {"Rust": 40, "Python": 40, "Kubernetes": 40}
    assert all(text[e["start"] : e["end"]] == e["text"] for e in body["entities"])
    assert len(body["entities"]) == 120


def test_tiny_pipeline_long_article_and_concurrent_requests(tiny_pipeline):
    """The trained pipeline, loaded by path: a 3,000-word article works, and concurrent requests give the
    same entities as one at a time (the transformer is not thread-safe: the worker must serialise it)."""
    app = create_app(str(tiny_pipeline), settings=ServeSettings())
    long_text = " ".join(["We rewrote the parser in Rust and kept the Python bindings."] * 300)
    texts = [f"Install Node.js {i} before you run the React build on Kubernetes. " * (1 + i % 5) for i in range(24)]

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = (await client.get("/api/health")).json()
            long = await client.post("/api/extract", json={"text": long_text})
            one_by_one = [(await client.post("/api/extract", json={"text": t})).json() for t in texts]
            together = await asyncio.gather(*(client.post("/api/extract", json={"text": t}) for t in texts))
            return health, long, one_by_one, [r.json() for r in together]

    try:
        health, long, one_by_one, together = asyncio.run(run())
    finally:
        app.state.extractor.close()
    assert health["pipeline"] == ["transformer", "ner", "term_rules", "tech_terms"]
    assert long.status_code == 200 and long.json()["characters"] == len(long_text)
    assert all(long_text[e["start"] : e["end"]] == e["text"] for e in long.json()["entities"])
    assert [r["entities"] for r in together] == [r["entities"] for r in one_by_one]


# --- CSV ---------------------------------------------------------------------------------------------------------


def _csv(client, data, name="posts.csv", **form):
    return client.post("/api/extract-csv", files={"file": (name, data, "text/csv")}, data=form)


def test_csv_gets_a_terms_column_rows_and_columns_kept(client):
    data = (
        b"id,text,author\r\n"
        b'3,"Rust, then Python; and Rust",ann\r\n'
        b"1,nothing technical,bob\r\n"
        b"\r\n"
        b'2,"multi\r\nline Kubernetes",cy\r\n'
        b"7,,dee\r\n"
    )
    r = _csv(client, data)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="posts.tech_terms.csv"'
    assert r.content == (
        b"id,text,author,tech_terms\r\n"
        b'3,"Rust, then Python; and Rust",ann,Rust; Python\r\n'
        b"1,nothing technical,bob,\r\n"
        b'2,"multi\r\nline Kubernetes",cy,Kubernetes\r\n'
        b"7,,dee,\r\n"
    )


def test_csv_dialect_bom_and_existing_terms_column(client):
    data = codecs.BOM_UTF8 + "title;Text;tech_terms\nä;Rust and GitHub Actions;old\nb;Python\n".encode()
    r = _csv(client, data)
    assert r.status_code == 200
    assert (
        r.content
        == codecs.BOM_UTF8
        + 'title;Text;tech_terms\nä;Rust and GitHub Actions;"Rust; GitHub Actions"\nb;Python;Python\n'.encode()
    )


def test_csv_column_option_and_cp1252(client):
    r = _csv(client, "id,body\n1,Café Rust\n".encode("cp1252"), column="body")
    assert r.status_code == 200 and r.text == "id,body,tech_terms\n1,Café Rust,Rust\n"


@pytest.mark.parametrize(
    "data,status,message",
    [
        (b"id,body\n1,Rust\n", 400, "the CSV has no 'text' column; its header has 'id', 'body'"),
        (b"", 400, "no header row"),
        (b"text\x00\nRust\n", 422, "NUL bytes"),
        (b"text\n" + b"Rust\n" * 6, 413, "more than 5 rows"),
        (b"text\n" + b"R" * 200 + b"\n", 413, "CSV line 2: the text has 200 characters; the limit is 100"),
    ],
)
def test_csv_errors(make_client, data, status, message):
    client = make_client(max_csv_rows=5, max_text_chars=100)
    r = _csv(client, data)
    assert r.status_code == status
    if message:
        assert message in r.json()["detail"]


def test_csv_missing_file_is_422(client):
    r = client.post("/api/extract-csv", data={"column": "text"})
    assert r.status_code == 422 and "file: Field required" in r.json()["detail"]


def test_read_write_csv_round_trip_without_a_server():
    table = read_csv(b"a|text|b\n1|x|2\n", max_rows=10)
    assert table.delimiter == "|" and table.text_index == 1
    assert write_csv(table, ["T"]) == b"a|text|b|tech_terms\n1|x|2|T\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_read_csv_reads_what_a_byte_order_mark_says(encoding):
    """The upload is decoded as `tech-ner extract` decodes files (files.textfile): a UTF-16 or UTF-32 export with
    its byte-order mark is read, not refused as binary; the table is written back as UTF-8 with a mark."""
    table = read_csv('id,text\r\n1,Café Rust\r\n2,"two\r\nlines"\r\n'.encode(encoding), max_rows=10)
    assert table.header == ["id", "text"] and table.bom and table.lineterminator == "\r\n"
    assert table.rows == [["1", "Café Rust"], ["2", "two\r\nlines"]] and not any(table.errors)
    assert table.lines == [(2, 2), (3, 4)]
    out = write_csv(table, ["Rust", ""])
    assert out == codecs.BOM_UTF8 + 'id,text,tech_terms\r\n1,Café Rust,Rust\r\n2,"two\r\nlines",\r\n'.encode()


# --- URL ---------------------------------------------------------------------------------------------------------


def test_url_article_is_fetched_extracted_and_processed(make_client, site):
    client = make_client(allow_private_urls=True)
    r = client.post("/api/extract-url", json={"url": f"{site.url}/redirect?/article"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["final_url"] == f"{site.url}/article" and body["redirects"] == [f"{site.url}/redirect?/article"]
    assert ARTICLE_TEXT in body["text"]
    assert "Java" not in body["text"] and "Copyright" not in body["text"]  # navigation and footer dropped
    assert {t["text"]: t["count"] for t in body["terms"]} == {
        "Rust": 2,
        "Python": 1,
        "PostgreSQL": 1,
        "Kubernetes": 1,
        "GitHub Actions": 1,
    }
    assert all(body["text"][s:e] == t["text"] for t in body["terms"] for s, e in t["offsets"])


def test_url_plain_text_is_taken_as_is(make_client, site):
    r = make_client(allow_private_urls=True).post("/api/extract-url", json={"url": f"{site.url}/plain"})
    assert r.status_code == 200 and r.json()["text"] == ARTICLE_TEXT


@pytest.mark.parametrize(
    "path,message",
    [
        ("/missing", "answered 404"),
        ("/image", "is not a web page (Content-Type image/png)"),
        ("/huge-declared", "larger than 100000 bytes (50000000 bytes)"),
        ("/huge-streamed", "larger than 100000 bytes (stopped reading)"),
        ("/slow", "took longer than 0.5 s"),
        ("/loop", "more than 2 redirects"),
        ("/redirect?file:///etc/passwd", "redirect 1 leads to a URL that is not fetched"),
    ],
)
def test_url_that_cannot_be_fetched_is_502(make_client, site, path, message):
    client = make_client(allow_private_urls=True, max_page_bytes=100_000, fetch_timeout=0.5, max_redirects=2)
    started = time.monotonic()
    r = client.post("/api/extract-url", json={"url": site.url + path})
    assert r.status_code == 502
    assert message in r.json()["detail"]
    assert time.monotonic() - started < 5


def test_url_refused_connection_is_502(make_client):
    r = make_client(allow_private_urls=True).post("/api/extract-url", json={"url": f"http://127.0.0.1:{free_port()}/"})
    assert r.status_code == 502 and "could not connect to 127.0.0.1" in r.json()["detail"]


def test_page_without_article_text_is_422(make_client, site):
    r = make_client(allow_private_urls=True).post("/api/extract-url", json={"url": f"{site.url}/empty"})
    assert r.status_code == 422 and "found no article text" in r.json()["detail"]


@pytest.mark.parametrize(
    "url,message",
    [
        ("ftp://example.com/file", "only http:// and https:// URLs are fetched, not ftp"),
        ("file:///etc/passwd", "not file"),
        ("example.com/page", "not no scheme"),
        ("http:///path", "has no host name"),
        ("http://exa mple.com/", "white space"),
        ("http://example.com:99999/", "not a valid URL"),
        ("", "no URL given"),
    ],
)
def test_invalid_url_is_422(client, url, message):
    r = client.post("/api/extract-url", json={"url": url})
    assert r.status_code == 422 and message in r.json()["detail"]


# --- the address guard -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,reason",
    [
        ("http://127.0.0.1/", "a loopback address"),
        ("http://127.0.0.1:8000/admin", "a loopback address"),
        ("http://localhost/", "a loopback address"),
        ("http://2130706433/", "a loopback address"),  # 127.0.0.1 written as one number
        ("http://[::1]/", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "a loopback address"),
        ("http://10.0.0.1/", "a private address"),
        ("http://192.168.1.1/", "a private address"),
        ("https://172.16.0.5/", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://0.0.0.0/", "an unspecified address"),
    ],
)
def test_api_refuses_non_public_addresses(client, url, reason):
    r = client.post("/api/extract-url", json={"url": url})
    assert r.status_code == 422
    assert reason in r.json()["detail"] and "only public addresses are fetched" in r.json()["detail"]


def test_page_form_refuses_private_address(client):
    r = client.post("/extract-url", data={"url": "http://169.254.169.254/latest/meta-data/"})
    assert r.status_code == 422 and "a link-local address" in r.text and 'value="http://169.254.169.254' in r.text


@pytest.mark.parametrize(
    "target,reason",
    [
        ("http://127.0.0.1:{other}/", "a loopback address"),
        ("http://localhost:{port}/article", "a loopback address"),  # the same server under another name
        ("http://10.0.0.1/", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
    ],
)
def test_redirect_to_non_public_address_is_refused(make_client, site, target, reason):
    """The first hop (this server) is exempt by name; the redirect's target is checked and refused."""
    client = make_client(allowed_url_hosts=(f"127.0.0.1:{site.port}",))
    target = target.format(port=site.port, other=free_port())
    r = client.post("/api/extract-url", json={"url": f"{site.url}/redirect?{target}"})
    assert r.status_code == 502
    assert f"refused to fetch redirect 1 ({target})" in r.json()["detail"] and reason in r.json()["detail"]
    assert [path for path, _ in site.seen] == [f"/redirect?{target}"]  # the target was never requested


def _resolver(table):
    """A stand-in for socket.getaddrinfo: host -> list of addresses."""

    def resolve(host, port, type=0, **_):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in table[host]
        ]

    return resolve


def test_check_url_guards_every_hop_with_its_own_resolution():
    resolve = _resolver(
        {
            "news.example": ["93.184.216.34"],
            "rebind.example": ["93.184.216.34", "10.0.0.1"],
            "meta.example": ["169.254.169.254"],
            "v6.example": ["2606:4700::1111"],
        }
    )
    parts, addresses = check_url("https://news.example/a?b=c", resolve=resolve)
    assert parts.hostname == "news.example" and [str(a) for a in addresses] == ["93.184.216.34"]
    assert check_url("http://v6.example/", resolve=resolve)[1][0].version == 6
    with pytest.raises(BlockedURL, match=r"rebind.example is a private address \(10.0.0.1\)"):
        check_url("http://rebind.example/", resolve=resolve)  # one private answer refuses the host
    with pytest.raises(BlockedURL, match="redirect 3") as e:
        check_url("http://meta.example/latest", resolve=resolve, hop=3)
    assert e.value.hop == 3
    with pytest.raises(FetchError, match="could not resolve the host 'nowhere.example'"):
        check_url("http://nowhere.example/", resolve=resolve)
    with pytest.raises(InvalidURL):
        check_url("gopher://news.example/", resolve=resolve)
    exempt = FetchPolicy(allowed_hosts=frozenset({"meta.example:80"}))
    assert check_url("http://meta.example/", exempt, resolve=resolve)
    with pytest.raises(BlockedURL):
        check_url("http://meta.example:8080/", exempt, resolve=resolve)  # another port is another host


@pytest.mark.parametrize(
    "ip,reason",
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("127.0.0.2", "a loopback address"),
        ("::ffff:10.1.2.3", "a private address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("100.64.0.1", "a reserved, non-public address"),
        ("ff02::1", "a multicast address"),
    ],
)
def test_refusal_reason(ip, reason):
    import ipaddress

    assert refusal_reason(ipaddress.ip_address(ip)) == reason


def test_fetch_connects_to_the_checked_address_and_sends_the_host_name(site):
    """A name is resolved once, checked, and connected to by address: no second look-up that could differ."""
    port = site.port
    calls = []

    def resolve(host, p, type=0, **_):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]

    page = fetch(f"http://articles.example:{port}/article", FetchPolicy(allow_private=True), resolve=resolve)
    assert calls == ["articles.example"]
    assert site.seen == [("/article", f"articles.example:{port}")]
    assert page.content_type == "text/html" and page.charset == "utf-8"
    assert ARTICLE_TEXT in page_text(page)


# --- the page ----------------------------------------------------------------------------------------------------


def test_home_page_has_three_forms(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for action in ('action="/extract"', 'action="/extract-url"', 'action="/extract-csv"'):
        assert action in r.text
    assert "<mark" not in r.text


def test_page_shows_highlighted_text_and_term_counts(client):
    r = client.post("/extract", data={"text": "I <b>like</b> Rust. Rust & Python!"})
    assert r.status_code == 200
    assert r.text.count('<mark class="entity"') == 3
    assert '<td class="term">Rust</td><td class="count">2</td>' in r.text
    assert "&lt;b&gt;like&lt;/b&gt;" in r.text and "<b>like</b>" not in r.text
    assert "I &lt;b&gt;like&lt;/b&gt; Rust. Rust &amp; Python!</textarea>" in r.text  # the text stays in the form


def test_page_url_and_csv_forms(make_client, site):
    client = make_client(allow_private_urls=True)
    r = client.post("/extract-url", data={"url": f"{site.url}/article"})
    assert r.status_code == 200 and r.text.count('<mark class="entity"') == 6 and f"{site.url}/article" in r.text
    r = client.post("/extract-csv", files={"file": ("in.csv", b"text\nRust\n")})
    assert r.status_code == 200 and r.content == b"text,tech_terms\nRust,Rust\n"
    r = client.post("/extract-csv", files={"file": ("in.csv", b"body\nRust\n")})
    assert r.status_code == 400 and "no &#39;text&#39; column" in r.text and 'role="alert"' in r.text


def test_page_missing_field_is_422_page(client):
    r = client.post("/extract", data={})
    assert (
        r.status_code == 422 and r.headers["content-type"].startswith("text/html") and "text: Field required" in r.text
    )


# --- schema and command ------------------------------------------------------------------------------------------


def test_openapi_schema_documents_endpoints_and_errors(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/api/extract", "/api/extract-url", "/api/extract-csv", "/api/health"}
    assert {"413", "422", "502"} <= set(paths["/api/extract-url"]["post"]["responses"])
    assert {"400", "413", "422"} <= set(paths["/api/extract-csv"]["post"]["responses"])
    assert "text/csv" in paths["/api/extract-csv"]["post"]["responses"]["200"]["content"]
    assert "multipart/form-data" in paths["/api/extract-csv"]["post"]["requestBody"]["content"]


def test_serve_command_missing_model_is_one_line(tmp_path):
    import typer
    from typer.testing import CliRunner

    from tech_ner.commands.serve import serve_command

    app = typer.Typer()
    app.command()(serve_command)
    result = CliRunner().invoke(app, ["--model", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "error: --model" in result.output and "no pipeline folder" in result.output
    assert "Traceback" not in result.output


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_csv_rows must be an integer >= 1"):
        ServeSettings(max_csv_rows=0)
    with pytest.raises(ValueError, match="allowed_hosts is empty"):
        ServeSettings(allowed_hosts=())
    policy = ServeSettings(allowed_url_hosts=("example.org",)).fetch_policy()
    assert policy.allowed_hosts == frozenset({"example.org"}) and not policy.allow_private
    assert ServeSettings().fetch_policy().allowed_hosts == frozenset()


def test_worker_checks_that_pieces_join_back_even_without_asserts(nlp):
    from tech_ner.apps.web.worker import Extractor, _Job

    job = _Job(["Rust and Python"], max_chars=100)
    job.docs = [[nlp("Rust and Pyth")]]  # a piece lost: the invariant split_text keeps is broken
    with pytest.raises(RuntimeError, match="pieces of a long text must join back"):
        Extractor(nlp)._merge(job)


# --- invalid text in any field -----------------------------------------------------------------------------------


JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _multipart(*fields):
    """A multipart body from (name, filename or None, raw bytes) fields, to send bytes httpx would not encode."""
    boundary = "tech-ner-test-boundary"
    body = b""
    for name, filename, value in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


CSV_FILE = ("file", "in.csv", b"text\nRust\n")

INVALID_TEXT = [
    # (path, body, headers, field, what the message says)
    ("/api/extract", b'{"text": "Python \\ud800 Rust"}', JSON, "text", "lone surrogate"),
    ("/api/extract", b'{"text": "Python \\udfff"}', JSON, "text", "lone surrogate"),
    ("/api/extract", b'{"text": "Python \xff Rust"}', JSON, "text", "not valid UTF-8"),
    ("/api/extract", b'{"text": "Python \xed\xa0\x80 Rust"}', JSON, "text", "not valid UTF-8"),  # an encoded surrogate
    ("/api/extract", b'{"text": "Python \\u0000 Rust"}', JSON, "text", "NUL"),
    ("/api/extract", b'{"text": ["\\ud800"]}', JSON, "text.0", "lone surrogate"),  # nested
    ("/api/extract", b'{"text": "Rust", "\\ud800": 1}', JSON, "body", "lone surrogate"),  # in a key
    ("/api/extract", b'{"text": "Rust", "html": "\xfe"}', JSON, "html", "not valid UTF-8"),
    ("/api/extract-url", b'{"url": "http://example.com/\\udc80"}', JSON, "url", "lone surrogate"),
    ("/api/extract-url", b'{"url": "http://ex\xc3.com/"}', JSON, "url", "not valid UTF-8"),
    ("/api/extract-url", b'{"url": "http://example.com/\\u0000"}', JSON, "url", "NUL"),
    ("/extract", b"text=Python%FF+Rust", FORM, "text", "not valid UTF-8"),
    ("/extract", b"text=Python%00Rust", FORM, "text", "NUL"),
    ("/extract", b"text=Python%ED%A0%80", FORM, "text", "not valid UTF-8"),
    ("/extract-url", b"url=http://example.com/%C0", FORM, "url", "not valid UTF-8"),
    ("/extract-url", b"url=http://example.com/%00", FORM, "url", "NUL"),
    ("/api/extract-csv", *_multipart(CSV_FILE, ("column", None, b"te\xffxt")), "column", "not valid UTF-8"),
    ("/api/extract-csv", *_multipart(CSV_FILE, ("column", None, b"te\x00xt")), "column", "NUL"),
    ("/extract-csv", *_multipart(CSV_FILE, ("column", None, b"\xed\xb2\x80")), "column", "not valid UTF-8"),
    ("/extract", *_multipart(("text", None, b"Rust \xff")), "text", "not valid UTF-8"),
]


@pytest.mark.parametrize("path,body,headers,field,what", INVALID_TEXT, ids=range(len(INVALID_TEXT)))
def test_invalid_text_in_any_field_is_422_naming_the_field(nlp, path, body, headers, field, what):
    client = TestClient(create_app(nlp), raise_server_exceptions=False)
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == 422, r.text
    message = r.json()["detail"] if path.startswith("/api/") else r.text
    assert f"{field}: " in message and what in message
    assert "internal error" not in message


# --- CSV rows: nothing merged, nothing lost ----------------------------------------------------------------------


def _rows(response):
    import csv
    import io

    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def test_csv_stray_quote_gives_an_error_row_never_merged_rows(client):
    r = _csv(client, b'id,text\n1,"abc\n2,def\n3,ghi\n4,"jkl"\n5,Python\n')
    assert r.status_code == 200
    rows = _rows(r)
    assert rows[0] == ["id", "text", "tech_terms", "tech_terms_error"]
    assert len(rows) - 1 == 5  # rows in = rows out (error rows included)
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]
    assert "CSV line 2:" in rows[1][3] and rows[1][2] == ""
    assert rows[5] == ["5", "Python", "Python", ""]
    assert (r.headers["x-csv-rows"], r.headers["x-csv-error-rows"]) == ("5", "1")


def test_csv_quote_that_swallows_rows_is_an_error_even_when_it_parses(client):
    """The stray quote is closed by another stray quote before a delimiter: the csv module reads one good-looking
    row from two lines. The second line looks like a row of its own, so the first is an error row."""
    r = _csv(client, b'id,text,author\n1,"abc,ann\n2,def",bob\n3,Rust,cy\n')
    rows = _rows(r)
    assert len(rows) - 1 == 3
    assert "CSV line 2:" in rows[1][4] and "line 3" in rows[1][4]
    assert rows[3] == ["3", "Rust", "cy", "Rust", ""]


def test_csv_legit_multiline_texts_are_kept(client):
    data = b'id,text\n1,"Hi,\nI use Rust, and Python.\nThanks"\n2,"two\n\nparagraphs on Kubernetes"\n'
    r = _csv(client, data)
    rows = _rows(r)
    assert rows == [
        ["id", "text", "tech_terms"],
        ["1", "Hi,\nI use Rust, and Python.\nThanks", "Rust; Python"],
        ["2", "two\n\nparagraphs on Kubernetes", "Kubernetes"],
    ]
    assert r.headers["x-csv-error-rows"] == "0"


@pytest.mark.parametrize(
    "data,line,message",
    [
        (b'text\nRust\n"unterminated\n', 3, "never closed"),
        (b"id,text\n1,Rust,extra\n", 2, "3 fields, but the header has 2"),
        (b"text\nRust\x00\n", 2, "NUL"),
        (b'id,text\n1,"x"y\n', 2, "malformed"),
        ("id,text\n1,Rust é\n2,Café \xff\n3,Python\n".encode("utf-8").replace("\xff".encode(), b"\xff"), 3, "UTF-8"),
    ],
)
def test_csv_malformed_rows_are_error_rows_naming_their_line(client, data, line, message):
    r = _csv(client, data)
    assert r.status_code == 200
    rows = _rows(r)
    errors = [row for row in rows[1:] if row[-1]]
    assert len(errors) == 1 and f"CSV line {line}:" in errors[0][-1] and message in errors[0][-1]
    lines_in = len([x for x in data.replace(b"\r\n", b"\n").split(b"\n")[1:] if x.strip()])
    assert len(rows) - 1 == lines_in  # every data line is one row out, good or error


def test_csv_cr_only_line_ends(client):
    r = _csv(client, b'id,text\r1,Rust\r2,"two\rlines of Python"\r')
    assert r.status_code == 200
    assert r.content == b'id,text,tech_terms\r1,Rust,Rust\r2,"two\rlines of Python",Python\r'


@hsettings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet='ab ,"\n\r', max_size=8), max_size=8),
    ends=st.sampled_from(["\n", "\r\n", "\r"]),
    strays=st.lists(st.integers(0, 200), max_size=3),
)
# found by CI: a stray quote ran over a line break inside a quoted field into three fields
@example(texts=["aa", 'aaaaa""', "aaaaaaa\r", "aa\r,a"], ends="\n", strays=[42])
def test_read_csv_accounts_for_every_line(texts, ends, strays):
    """Rows written by the csv module come back as written, and again after write_csv; with stray quotes
    inserted, every physical line is in exactly one row (an error row: one line) or is blank: nothing merged
    away, nothing lost."""
    import csv
    import io
    import re

    out = io.StringIO()
    csv.writer(out, lineterminator=ends).writerow(["id", "text"])
    for i, t in enumerate(texts):  # the csv module leaves a lone \r bare in a \n file: quote line breaks always
        quoting = csv.QUOTE_ALL if "\r" in t or "\n" in t else csv.QUOTE_MINIMAL
        csv.writer(out, lineterminator=ends, quoting=quoting).writerow([str(i), t])
    data = out.getvalue()
    table = read_csv(data.encode(), max_rows=100)
    assert [r[1] for r in table.rows] == texts and not any(table.errors)
    again = read_csv(write_csv(table, ["x"] * len(texts)), max_rows=100)
    assert [r[1] for r in again.rows] == [t if not t.startswith(("\r",)) else "'" + t for t in texts]
    header_end = len("id,text") + len(ends)
    for at in strays:
        at = header_end + min(at, len(data) - header_end)
        data = data[:at] + '"' + data[at:]
    table = read_csv(data.encode(), max_rows=100)
    physical = re.split(r"\r\n|\n|\r", data)
    if physical[-1] == "":
        physical.pop()
    covered = set()
    previous = 1
    for (first, last), error in zip(table.lines, table.errors):
        assert previous < first <= last
        assert error is None or first == last
        covered.update(range(first, last + 1))
        previous = last
    assert all(not physical[n - 1].strip() for n in range(2, len(physical) + 1) if n not in covered)
    assert table.blank_lines == len(physical) - 1 - len(covered)


# --- formula injection -------------------------------------------------------------------------------------------


def test_csv_cells_that_start_a_formula_are_neutralised():
    table = read_csv(
        b'id,text\n1,=HYPERLINK("http://x")\n2,-5\n3,+cmd|x\n4,@SUM(A1)\n5,"\tx"\n6,"\rx"\n7,plain\n', max_rows=10
    )
    body = write_csv(table, ["=1+2", "-2", "", "@x", "\tRust", "\rRust", "Rust"])
    rows = [r for r in __import__("csv").reader(__import__("io").StringIO(body.decode(), newline=""))]
    assert rows[1] == ["1", '\'=HYPERLINK("http://x")', "'=1+2"]
    assert rows[2] == ["2", "-5", "-2"]  # a number is data, not a formula
    assert rows[3] == ["3", "'+cmd|x", ""]
    assert rows[4] == ["4", "'@SUM(A1)", "'@x"]
    assert rows[5] == ["5", "'\tx", "'\tRust"] and rows[6] == ["6", "'\rx", "'\rRust"]
    assert rows[7] == ["7", "plain", "Rust"]


def test_csv_download_neutralises_formulas_and_reports_it(client):
    r = _csv(client, b"id,text\n1,=Rust+1\n2,Rust\n")
    assert _rows(r)[1][1] == "'=Rust+1" and r.headers["x-csv-cells-neutralised"] == "1"


# --- security headers and the Host header ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,kwargs",
    [
        ("get", "/", {}),
        ("get", "/api/health", {}),
        ("get", "/nope", {}),
        ("get", "/openapi.json", {}),
        ("post", "/api/extract", {"json": {}}),
        ("post", "/extract", {"data": {"text": "Rust"}}),
        ("post", "/api/extract-csv", {"files": {"file": ("a.csv", b"text\nRust\n")}}),
    ],
)
def test_every_response_has_security_headers(client, method, path, kwargs):
    r = getattr(client, method)(path, **kwargs)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp


def test_host_header_is_checked_against_allowed_hosts(nlp):
    from tech_ner.apps.web.settings import LOOPBACK_HOSTS, default_allowed_hosts

    app = create_app(nlp, settings=ServeSettings(allowed_hosts=LOOPBACK_HOSTS))
    for base, status in [
        ("http://localhost:8000", 200),
        ("http://127.0.0.1", 200),
        ("http://[::1]:8000", 200),
        ("http://rebind.example:8000", 400),
        ("http://127.0.0.1.nip.io", 400),
    ]:
        with TestClient(app, base_url=base) as client:
            r = client.get("/api/health")
            assert r.status_code == status, base
            assert r.headers["x-frame-options"] == "DENY"
    assert default_allowed_hosts("127.0.0.1") == LOOPBACK_HOSTS == default_allowed_hosts("::1")
    assert default_allowed_hosts("localhost") == LOOPBACK_HOSTS
    assert default_allowed_hosts("0.0.0.0") == ("*",) == default_allowed_hosts("192.168.1.5")


def test_readme_documents_allowed_hosts():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    serve_section = readme.split("tech-ner serve`", 1)[1].split("\n## ", 1)[0]
    assert "--allowed-hosts" in serve_section


# --- fairness ----------------------------------------------------------------------------------------------------


@spacy.Language.component("test_slow_pipe")
def _slow_component(doc):
    time.sleep(0.0005 * len(doc.text))  # 0.1 s per 200 characters: a stand-in for the transformer
    return doc


@pytest.fixture
def slow_nlp(nlp):
    nlp.add_pipe("test_slow_pipe", first=True)
    return nlp


def test_small_request_is_answered_while_a_big_one_runs(slow_nlp):
    """A big text (about 6 s of work) and small ones sent beside it: the small ones are answered in well under a
    second each, and the big one still completes, whole."""
    big = "Rust and Python in a sentence. " * 400  # 12,400 characters
    app = create_app(slow_nlp, settings=ServeSettings(piece_chars=200, max_text_chars=len(big)))

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            big_task = asyncio.create_task(client.post("/api/extract", json={"text": big}))
            await asyncio.sleep(0.3)  # the big one is being processed
            latencies = []
            for _ in range(3):
                started = time.monotonic()
                small = await client.post("/api/extract", json={"text": "Kubernetes and Rust."})
                latencies.append(time.monotonic() - started)
                assert small.status_code == 200 and len(small.json()["terms"]) == 2
            assert not big_task.done()
            return latencies, await big_task

    try:
        latencies, big_response = asyncio.run(run())
    finally:
        app.state.extractor.close()
    assert max(latencies) < 1.5, latencies
    assert big_response.status_code == 200 and big_response.json()["characters"] == len(big)
    assert {t["text"]: t["count"] for t in big_response.json()["terms"]} == {"Rust": 400, "Python": 400}


def test_request_over_the_time_limit_is_503(slow_nlp, make_client):
    big = "Rust and Python in a sentence. " * 400
    client = TestClient(
        create_app(slow_nlp, settings=ServeSettings(piece_chars=200, max_text_chars=len(big), request_timeout=0.5))
    )
    started = time.monotonic()
    with client:
        r = client.post("/api/extract", json={"text": big})
        assert r.status_code == 503 and "--request-timeout" in r.json()["detail"]
        assert time.monotonic() - started < 3
        assert client.post("/api/extract", json={"text": "Rust"}).status_code == 200  # the worker moved on


# --- the page header and the schema link -------------------------------------------------------------------------


def test_docs_pages_are_gone_and_the_page_links_the_schema(client):
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert 'href="/openapi.json"' in client.get("/").text


def test_page_shows_the_model_name_or_its_folder(nlp, tmp_path):
    nlp.to_disk(tmp_path / "model-best")
    with TestClient(create_app(str(tmp_path / "model-best"))) as client:
        assert "<span>model-best</span>" in client.get("/").text and "0.0.0" not in client.get("/").text
        assert client.get("/api/health").json()["model"] == "model-best"
    nlp.meta.update(name="tech_ner", version="1.2.0")
    nlp.to_disk(tmp_path / "named")
    with TestClient(create_app(str(tmp_path / "named"))) as client:
        assert "<span>en_tech_ner 1.2.0</span>" in client.get("/").text
