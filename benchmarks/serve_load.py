"""Load on `tech-ner serve`: N concurrent clients on loopback for S seconds against a trained pipeline.

Starts `scripts/serve.py` in a subprocess on a free 127.0.0.1 port (so the clients do not share the server's
interpreter), waits for /api/health, then runs `--clients` asyncio clients that each POST /api/extract in a
loop until `--seconds` have passed. Writes requests/s, p50/p90/p99 latency and the error count to a JSON
results file. Traffic goes to the loopback address only, and the run stops by itself.

`--big-chars N` adds the fairness scenario: one more client sends a text of N characters (500,000 is the
server's default maximum, about 100 s of work) again and again, and the figures of the small requests show how
long they wait beside it; the big requests' count, latency and statuses are reported apart.

    python benchmarks/serve_load.py --model training/model-best --seconds 60 --clients 32
    python benchmarks/serve_load.py --model training/model-best --seconds 120 --clients 4 --big-chars 500000 \
        --out benchmarks/results/serve_fairness.json
"""

import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import List

import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # this checkout's tech_ner, not an installed one (as the other benchmarks do)
SENTENCES = [
    "We rewrote the parser in Rust and kept the Python bindings.",
    "The PostgreSQL cluster now runs on Kubernetes behind an nginx ingress.",
    "Nobody on the team liked the new office, but the coffee machine is great.",
    "Install Node.js before you run the React build, or Webpack will fail.",
    "Our phones ship with Android 14 and support Wi-Fi 7 and 5G.",
    "The lithium-ion battery lasted two days on the Raspberry Pi.",
    "She moved the jobs from Jenkins to GitHub Actions last week.",
    "The service exposes a gRPC API and stores blobs in Amazon S3.",
    "We train the models with PyTorch on CUDA and export them to ONNX.",
    "A python swallowed the rabbit whole, the zookeeper said.",
]


def make_texts(n: int, seed: int = 0) -> List[str]:
    """Paragraphs of 2 to 8 sentences (about 25 to 100 words), the size of a short post."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 8))) for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def percentile(sorted_values: List[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * (len(sorted_values) - 1)))))
    return sorted_values[i]


def make_big_text(chars: int, seed: int = 1) -> str:
    """Paragraphs of short posts up to `chars` characters: one maximum-size text."""
    paragraphs, size = [], 0
    for text in make_texts(max(1, chars // 300 + 1), seed):
        paragraphs.append(text)
        size += len(text) + 2
        if size >= chars:
            break
    return "\n\n".join(paragraphs)[:chars]


async def run_load(
    base: str, clients: int, seconds: float, texts: List[str], max_requests: int, big_text: str = ""
) -> dict:
    import httpx

    latencies: List[float] = []
    big_latencies: List[float] = []
    big_statuses: Counter = Counter()
    errors: Counter = Counter()
    sent = 0
    # one connection per client, the big client's too: with fewer, a small request would wait in the client's own
    # pool behind the big one, and that wait would be counted as the server's latency
    connections = clients + (1 if big_text else 0)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        for text in texts[:2]:  # warm-up, not counted
            await http.post("/api/extract", json={"text": text})
        start = time.monotonic()
        stop = start + seconds

        async def client(k: int) -> None:
            nonlocal sent
            i = k
            while time.monotonic() < stop and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post("/api/extract", json={"text": texts[i % len(texts)]})
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[f"HTTP {r.status_code}"] += 1
                except httpx.HTTPError as e:
                    errors[type(e).__name__] += 1
                i += clients

        async def big_client() -> None:  # the fairness scenario: one maximum-size text after another
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = await http.post("/api/extract", json={"text": big_text}, timeout=max(60.0, seconds * 2))
                    big_statuses[f"HTTP {r.status_code}"] += 1
                    big_latencies.append(time.perf_counter() - t0)
                except httpx.HTTPError as e:
                    big_statuses[type(e).__name__] += 1

        await asyncio.gather(*(client(k) for k in range(clients)), *([big_client()] if big_text else []))
        elapsed = time.monotonic() - start
    latencies.sort()
    return {
        "requests_ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "latency_ms": {f"p{q}": round(1000 * percentile(latencies, q), 1) for q in (50, 90, 99)},
        "max_latency_ms": round(1000 * max(latencies, default=float("nan")), 1),
        **(
            {
                "big_requests": {
                    "chars": len(big_text),
                    "statuses": dict(big_statuses),
                    "latency_s": [round(x, 2) for x in big_latencies],
                }
            }
            if big_text
            else {}
        ),
    }


def main(
    model: Path = typer.Option(
        Path("training/model-best"), "--model", exists=True, file_okay=False, help="A trained pipeline folder"
    ),
    seconds: float = typer.Option(60.0, "--seconds", min=1.0),
    clients: int = typer.Option(32, "--clients", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="The server's --batch-size"),
    max_requests: int = typer.Option(1_000_000, "--max-requests", min=1, help="Stop after this many requests"),
    big_chars: int = typer.Option(
        0,
        "--big-chars",
        min=0,
        help="Fairness scenario: one more client sends texts of this many characters "
        "(0: off); the latency figures are the small requests'",
    ),
    out: Path = typer.Option(Path("benchmarks/results/serve_load.json"), "--out"),
):
    """Measure requests/s and latency of /api/extract under concurrent clients."""
    from tech_ner.files.atomic import write_text_atomic

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = out.with_suffix(".server.log.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "scripts" / "serve.py"),
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--batch-size",
                str(batch_size),
                "--log-level",
                "warning",
                "--max-text-chars",
                str(max(500_000, big_chars)),
                "--max-body-bytes",
                str(max(5_000_000, 4 * big_chars)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # this checkout's tech_ner, not whichever one is installed
            env={
                **os.environ,
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            },
        )
        try:
            load_start = time.monotonic()
            wait_until_up(base, proc)
            startup = time.monotonic() - load_start
            texts = make_texts(256)
            stats = asyncio.run(
                run_load(base, clients, seconds, texts, max_requests, make_big_text(big_chars) if big_chars else "")
            )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log_path.unlink(missing_ok=True)
    meta = json.loads((model / "meta.json").read_text())
    result = {
        "benchmark": "serve_load",
        "endpoint": "POST /api/extract",
        "model": str(model),
        "pipeline": meta.get("pipeline"),
        "clients": clients,
        "seconds": seconds,
        "batch_size": batch_size,
        "big_chars": big_chars,
        "words_per_text": round(sum(len(t.split()) for t in make_texts(256)) / 256, 1),
        "startup_s": round(startup, 2),
        **stats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    lat = stats["latency_ms"]
    big = stats.get("big_requests")
    beside = f" beside {sum(big['statuses'].values())} texts of {big_chars:,} characters" if big else ""
    typer.echo(
        f"{clients} clients{beside}, {stats['elapsed_s']} s: {stats['requests_per_s']} requests/s, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {stats['max_latency_ms']} ms, {stats['errors']} errors "
        f"-> {out}"
    )


if __name__ == "__main__":
    typer.run(main)
