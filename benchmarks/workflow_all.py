"""Time `spacy project run all` on a fresh clone and read the packaged model's test-split F1.

Clones this repository's HEAD into a temporary folder (so nothing trained earlier is reused), runs
`python -m spacy project run all` there on the embedded default, and records the wall time of the
whole workflow and of each step (from the step headers weasel prints), the test-split scores of the
evaluate step (spaCy's scorer and seqeval strict) and the accuracy written into the package's meta.json.

    python benchmarks/workflow_all.py --out benchmarks/results/workflow_all.json
"""

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import typer

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(r"^=+\s*(\S+)\s*=+$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def main(
    out: Path = typer.Option(Path("benchmarks/results/workflow_all.json")),
    keep: bool = typer.Option(False, help="Keep the clone (its path is printed)"),
    target_minutes: float = typer.Option(30.0),
    target_f1: float = typer.Option(0.85),
):
    from tech_ner.files.atomic import write_text_atomic

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="workflow_all_"))
    clone = tmp / "en_tech_ner"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # ../shared beside the checkout, as in CI (the StackOverflow asset is not used by `all`)
    shared = ROOT.parent / "shared"
    if shared.exists():
        os.symlink(shared, tmp / "shared")
    steps: List[Dict] = []
    log_path = tmp / "all.log"
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        # step headers arrive when printed, not when a buffer fills; the clone's own tech_ner, not an installed one
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(clone)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "spacy", "project", "run", "all"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            now = time.perf_counter() - t0
            m = STEP.match(ANSI.sub("", line).strip())
            if m:
                if steps:
                    steps[-1]["seconds"] = round(now - steps[-1]["start"], 1)
                steps.append({"step": m.group(1), "start": round(now, 1)})
                typer.echo(f"[{now / 60:5.1f} min] {m.group(1)}", err=True)
        code = proc.wait()
    wall = time.perf_counter() - t0
    if steps:
        steps[-1]["seconds"] = round(wall - steps[-1]["start"], 1)
    if code != 0:
        raise SystemExit(f"spacy project run all failed (exit {code}): see {log_path}")
    metrics = json.loads((clone / "metrics" / "metrics.json").read_text(encoding="utf-8"))
    test = metrics.get("splits", metrics)["test"]
    metas = list((clone / "packages").glob("*/meta.json"))
    meta = json.loads(metas[0].read_text(encoding="utf-8")) if metas else {}
    wheels = sorted(p.name for p in (clone / "packages").glob("*/dist/*.whl"))
    f1 = test["spacy"]["ents_f"]
    result = {
        "commit": head,
        "uncommitted_changes": bool(dirty),
        "wall_seconds": round(wall, 1),
        "wall_minutes": round(wall / 60, 2),
        "steps": steps,
        "test": {
            "spacy": {k: test["spacy"][k] for k in ("ents_p", "ents_r", "ents_f")},
            "seqeval_strict": test.get("seqeval_strict"),
        },
        **{
            split: {
                "spacy": {k: metrics.get("splits", metrics)[split]["spacy"][k] for k in ("ents_p", "ents_r", "ents_f")}
            }
            for split in ("wild_dev", "wild_test")
            if split in metrics.get("splits", metrics)
        },
        "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "packaged_meta_performance": meta.get("performance", {}).get("ents_f"),
        "cpu_precision": meta.get("cpu_precision"),
        "wheels": wheels,
        "targets": {"minutes": target_minutes, "f1": target_f1, "met": wall / 60 < target_minutes and f1 >= target_f1},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))
    if keep:
        typer.echo(f"clone kept in {clone}", err=True)
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
