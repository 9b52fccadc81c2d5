"""Our pipeline next to the Hugging Face Trainer recipe, on the same backbone, data, epochs and CPU, in one run.

Both train on the StackOverflow NER train split mapped to TECH (corpus/stackoverflow, made by
`spacy project run convert-so`) for the same number of epochs and are scored with seqeval on the test
split. Wall times are whole processes (loading, training, saving), measured one after the other.

    python benchmarks/train_vs_hf.py --epochs 2 --out benchmarks/results/train_vs_hf.json
"""
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import typer

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: List[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: see {log}")
    return time.perf_counter() - t0


def main(
    data: Path = typer.Option(Path("corpus/stackoverflow")),
    config: Path = typer.Option(Path("configs/cpu_minilm.cfg")),
    epochs: int = typer.Option(2),
    batch_docs: int = typer.Option(3, help="Documents per batch in our training (about 5 sentences each here; the config default)"),
    learn_rate: float = typer.Option(None, help="Our peak learning rate; default: project.yml's so_learn_rate"),
    overrides: str = typer.Option("", help="Extra config overrides for our run, e.g. '--training.optimizer.learn_rate.warmup_steps=50'"),
    skip_hf: bool = typer.Option(False, help="Reuse the HF result file instead of re-running it"),
    work: Path = typer.Option(Path("/tmp/train_vs_hf")),
    out: Path = typer.Option(Path("benchmarks/results/train_vs_hf.json")),
):
    from tech_ner.atomic import write_text_atomic
    from tech_ner.export import read_docs

    work.mkdir(parents=True, exist_ok=True)
    if learn_rate is None:
        import srsly

        learn_rate = float(srsly.read_yaml(ROOT / "project.yml")["vars"]["so_learn_rate"])
    hf_json = work / "hf.json"
    result = {"epochs": epochs, "data": str(data)}
    if not skip_hf:
        hf_wall = run([sys.executable, "benchmarks/hf_trainer_baseline.py", "--train", str(data / "train.spacy"),
                       "--test", str(data / "test.spacy"), "--epochs", str(epochs), "--out", str(hf_json)], work / "hf.log")
        result["hf_process_seconds"] = round(hf_wall, 1)
    result["hf"] = json.loads(hf_json.read_text())
    n_docs = sum(1 for _ in read_docs([data / "train.spacy"]))
    steps = math.ceil(n_docs / batch_docs) * epochs
    ours_cmd = [sys.executable, "scripts/train.py", str(config), str(work / "ours"),
                "--paths.train", str(data / "train.spacy"), "--paths.dev", str(data / "dev.spacy"),
                "--training.max_epochs", str(epochs), "--training.max_steps", "0",
                "--training.optimizer.learn_rate.total_steps", str(steps), "--training.eval_frequency", str(steps),
                "--corpora.dev.limit", "50", "--training.batcher.size", str(batch_docs),
                "--training.optimizer.learn_rate.initial_rate", str(learn_rate)] + overrides.split()
    ours_wall = run(ours_cmd, work / "ours.log")
    run([sys.executable, "-m", "tech_ner", "evaluate", str(work / "ours" / "model-last"), str(data / "test.spacy"),
         "--names", "test", "-o", str(work / "ours_metrics")], work / "ours_eval.log")
    metrics = json.loads((work / "ours_metrics" / "metrics.json").read_text())["test"]
    result["ours"] = {"process_seconds": round(ours_wall, 1), "steps": steps, "batch_docs": batch_docs, "learn_rate": learn_rate,
                      "train_docs": n_docs, "overrides": overrides, "config": str(config),
                      "seqeval_default": metrics["seqeval_default"], "seqeval_strict": metrics["seqeval_strict"],
                      "spacy": {k: metrics["spacy"][k] for k in ("ents_p", "ents_r", "ents_f")}}
    hf_f = result["hf"]["seqeval_default"]["f"]
    ours_f = metrics["seqeval_default"]["f"]
    result["verdict"] = {
        "f1_ours_minus_hf (seqeval default)": round(ours_f - hf_f, 4),
        "wall_ours_over_hf": round(ours_wall / result["hf_process_seconds"], 3) if "hf_process_seconds" in result else None,
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
