"""End to end in a real browser: `scripts/serve.py` in a subprocess on a free loopback port, Debian's headless
Chromium driven by Playwright. A person pastes text, submits, and sees the terms highlighted.

Only the system browser is used (`playwright install` downloads browsers, which this project never does):
install it with `.ci/install-browser`.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
TEXT = "We moved the build from Jenkins to GitHub Actions.\n\nThe Rust service now runs on Kubernetes, next to the old Rust one."

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}: run .ci/install-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ruled_pipeline(tiny_pipeline, tmp_path):
    """The tiny trained pipeline with an entity_ruler after its ner, so that the highlighted terms are certain."""
    import spacy

    nlp = spacy.load(tiny_pipeline)
    ruler = nlp.add_pipe("entity_ruler", before="tech_terms", config={"overwrite_ents": True})
    ruler.add_patterns([{"label": "TECH", "pattern": p} for p in ("Jenkins", "GitHub Actions", "Rust", "Kubernetes")])
    out = tmp_path / "pipeline"
    nlp.to_disk(out)
    return out


@pytest.fixture
def server(ruled_pipeline, tmp_path):
    """`python scripts/serve.py` on a free loopback port; yields its base URL, stops it after the test."""
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "serve.py"),
            "--model",
            str(ruled_pipeline),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer in 60 s:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on SIGINT
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_paste_text_and_see_terms_highlighted(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            page.goto(server)
            assert page.title() == "Technology terms"
            page.fill("#text", TEXT)
            with page.expect_navigation():
                page.click("#extract-text")
            # displaCy's mark holds the term and its label; the tiny ner may add marks of its own
            marks = page.locator("#highlighted mark.entity")
            highlighted = [" ".join(m.split()) for m in marks.all_inner_texts()]
            ruled = [
                m for m in highlighted if m.rsplit(" ", 1)[0] in ("Jenkins", "GitHub Actions", "Rust", "Kubernetes")
            ]
            assert ruled == ["Jenkins TECH", "GitHub Actions TECH", "Rust TECH", "Kubernetes TECH", "Rust TECH"]
            assert marks.first.is_visible()
            rows = [" ".join(r.split()) for r in page.locator("#terms tbody tr").all_inner_texts()]
            assert {"Jenkins 1 TECH", "GitHub Actions 1 TECH", "Rust 2 TECH", "Kubernetes 1 TECH"} <= set(rows)
            assert page.input_value("#text") == TEXT  # the pasted text stays in the form
            page.screenshot(path=os.environ.get("TECH_NER_SCREENSHOT", str(tmp_path / "result.png")), full_page=True)
        finally:
            context.close()
