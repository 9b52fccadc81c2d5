"""Conversion speed and memory: `tech-ner convert` next to `spacy convert -c ner`, in one run.

Generates a two-column IOB2 file of N tokens (default 1,000,000; words and tags drawn
with a seed), converts it with both tools in fresh subprocesses, and writes tokens/s
and peak RSS (ru_maxrss of the child) to a JSON results file. With --big-mb it also
streams a file of that many MB into a sharded folder and records the peak memory.

    python benchmarks/convert_speed.py --tokens 1000000 --big-mb 100
"""

import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

WORDS = [
    "the",
    "We",
    "deploy",
    "Python",
    "services",
    "on",
    "Kubernetes",
    "and",
    "PostgreSQL",
    "with",
    "a",
    "new",
    "pipeline",
    ",",
    ".",
    "Node.js",
    "runs",
    "fast",
    "C++",
    "3D",
    "printing",
    "lithium-ion",
    "battery",
    "5G",
]


def make_file(path: Path, n_tokens: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < n_tokens:
            n = rng.randint(5, 40)
            lines, inside = [], False
            for _ in range(n):
                r = rng.random()
                if r < 0.12:
                    tag, inside = "B-TECH", True
                elif r < 0.18 and inside:
                    tag = "I-TECH"
                else:
                    tag, inside = "O", False
                lines.append(f"{rng.choice(WORDS)}\t{tag}\n")
            f.write("".join(lines) + "\n")
            written += n
    return written


def measure(cmd, tokens: int) -> dict:
    """Run cmd in a child; RETURNS seconds, tokens/s and the child's own peak RSS (wait4)."""
    import os

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out[-2000:]}\n{err[-2000:]}")
    return {
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main(
    tokens: int = typer.Option(1_000_000),
    big_mb: int = typer.Option(0, help="Also stream a file of this many MB (0: skip)"),
    repeats: int = typer.Option(2, help="Runs of each converter; the fastest counts"),
    out: Path = typer.Option(Path("benchmarks/results/convert_speed.json")),
):
    from tech_ner.files.atomic import write_text_atomic

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "big.iob"
        n = make_file(src, tokens)
        ours_cmd = [sys.executable, "-m", "tech_ner", "convert", str(src), "-o", str(tmp / "ours.spacy"), "-n", "10"]
        spacy_cmd = [
            sys.executable,
            "-m",
            "spacy",
            "convert",
            str(src),
            str(tmp / "spacy_out"),
            "-c",
            "ner",
            "-n",
            "10",
        ]
        (tmp / "spacy_out").mkdir()
        ours = min((measure(ours_cmd, n) for _ in range(repeats)), key=lambda r: r["seconds"])
        theirs = min((measure(spacy_cmd, n) for _ in range(repeats)), key=lambda r: r["seconds"])
        result = {
            "tokens": n,
            "file_mb": round(src.stat().st_size / 2**20, 1),
            "tech_ner_convert": ours,
            "spacy_convert_ner": theirs,
            "time_ratio_ours_over_spacy": round(ours["seconds"] / theirs["seconds"], 3),
            "target": "ours no slower than 1.2x spaCy's converter",
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        if big_mb:
            big = tmp / "huge.iob"
            approx_tokens = int(big_mb * 2**20 / (src.stat().st_size / n))
            nb = make_file(big, approx_tokens, seed=1)
            streamed = measure([sys.executable, "-m", "tech_ner", "convert", str(big), "-o", str(tmp / "shards")], nb)
            result["streamed"] = {
                "file_mb": round(big.stat().st_size / 2**20, 1),
                "tokens": nb,
                **streamed,
                "target": "peak RSS under 500 MB",
            }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
