"""Our pipeline next to the Hugging Face Trainer recipe, on the same backbone, data, epochs and CPU, in one run.

Both train on the StackOverflow NER train split mapped to TECH (corpus/stackoverflow, made by
`spacy project run convert-so`: one sentence per document) for the same number of epochs and are scored
with seqeval on the test split. Ours takes project.yml's StackOverflow recipe (so_batch_tokens,
so_learn_rate); HF's is benchmarks/hf_trainer_baseline.py. Wall times are whole processes (loading,
training, saving), measured one after the other.

    python benchmarks/train_vs_hf.py --epochs 2 --seeds 0,1 --out benchmarks/results/train_vs_hf.json

Each seed trains both recipes once (HF's `seed`, our `system.seed`); one seed is one sample of noise
worth several tenths of a point here, so the verdict compares the means over the seeds given.
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
# sentences the padded batcher sorts by length at a time: spaCy's default, passed on and used to count the steps
PADDED_BUFFER = 256


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
    seeds: str = typer.Option(
        "0", help="Comma-separated seeds; each trains both recipes once, and the verdict compares the means"
    ),
    batch_tokens: int = typer.Option(
        None,
        help="Our batches: padded size in tokens (spacy.batch_by_padded.v1); default: project.yml's so_batch_tokens",
    ),
    batch_docs: int = typer.Option(
        None, help="Instead of --batch-tokens: documents per batch (spacy.batch_by_sequence.v1)"
    ),
    learn_rate: float = typer.Option(None, help="Our peak learning rate; default: project.yml's so_learn_rate"),
    overrides: str = typer.Option(
        "", help="Extra config overrides for our run, e.g. '--training.optimizer.learn_rate.warmup_steps=50'"
    ),
    skip_hf: bool = typer.Option(False, help="Reuse the HF result files of an earlier run instead of re-running them"),
    work: Path = typer.Option(Path("/tmp/train_vs_hf")),
    out: Path = typer.Option(Path("benchmarks/results/train_vs_hf.json")),
):
    import srsly
    from spacy.training.batchers import minibatch_by_padded_size

    from tech_ner.files.atomic import write_text_atomic
    from tech_ner.corpus.docbin import read_docs

    work.mkdir(parents=True, exist_ok=True)
    project_vars = srsly.read_yaml(ROOT / "project.yml")["vars"]
    if learn_rate is None:
        learn_rate = float(project_vars["so_learn_rate"])
    if batch_docs is None and batch_tokens is None:
        batch_tokens = int(project_vars["so_batch_tokens"])
    if batch_docs is not None and batch_tokens is not None:
        raise SystemExit("give --batch-tokens or --batch-docs, not both")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds {seeds!r}: expected comma-separated integers, like 0,1")
    if not seed_list:
        raise SystemExit("--seeds: give at least one seed")
    train_docs = list(read_docs([data / "train.spacy"]))
    n_docs = len(train_docs)
    if batch_docs is not None:
        steps = math.ceil(n_docs / batch_docs) * epochs
        batcher = ["--training.batcher.size", str(batch_docs)]
    else:
        # batches per epoch as spaCy's padded batcher makes them (the shuffle moves the count by a batch or two)
        steps = sum(1 for _ in minibatch_by_padded_size(train_docs, size=batch_tokens, buffer=PADDED_BUFFER)) * epochs
        batcher = [
            "--training.batcher.@batchers",
            "spacy.batch_by_padded.v1",
            "--training.batcher.size",
            str(batch_tokens),
            "--training.batcher.buffer",
            str(PADDED_BUFFER),
            "--training.batcher.discard_oversize",
            "false",
        ]
    del train_docs
    runs = []
    for seed in seed_list:
        run_dir = work / f"seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        hf_json = run_dir / "hf.json"
        row = {"seed": seed}
        if not skip_hf:
            hf_wall = run(
                [
                    sys.executable,
                    "benchmarks/hf_trainer_baseline.py",
                    "--train",
                    str(data / "train.spacy"),
                    "--test",
                    str(data / "test.spacy"),
                    "--epochs",
                    str(epochs),
                    "--seed",
                    str(seed),
                    "--out",
                    str(hf_json),
                ],
                run_dir / "hf.log",
            )
            row["hf_process_seconds"] = round(hf_wall, 1)
        row["hf"] = json.loads(hf_json.read_text())
        ours_cmd = [
            sys.executable,
            "scripts/train.py",
            str(config),
            str(run_dir / "ours"),
            "--paths.train",
            str(data / "train.spacy"),
            "--paths.dev",
            str(data / "dev.spacy"),
            "--system.seed",
            str(seed),
            "--training.max_epochs",
            str(epochs),
            "--training.max_steps",
            "0",
            "--training.optimizer.learn_rate.total_steps",
            str(steps),
            "--training.eval_frequency",
            str(steps),
            "--corpora.dev.limit",
            "50",
            "--training.optimizer.learn_rate.initial_rate",
            str(learn_rate),
        ]
        ours_cmd += batcher + overrides.split()
        ours_wall = run(ours_cmd, run_dir / "ours.log")
        run(
            [
                sys.executable,
                "-m",
                "tech_ner",
                "evaluate",
                str(run_dir / "ours" / "model-last"),
                str(data / "test.spacy"),
                "--names",
                "test",
                "-o",
                str(run_dir / "ours_metrics"),
            ],
            run_dir / "ours_eval.log",
        )
        metrics = json.loads((run_dir / "ours_metrics" / "metrics.json").read_text())["test"]
        row["ours"] = {
            "process_seconds": round(ours_wall, 1),
            "seqeval_default": metrics["seqeval_default"],
            "seqeval_strict": metrics["seqeval_strict"],
            "spacy": {k: metrics["spacy"][k] for k in ("ents_p", "ents_r", "ents_f")},
        }
        runs.append(row)
        typer.echo(
            f"seed {seed}: HF F1 {row['hf']['seqeval_default']['f']:.4f}, ours {metrics['seqeval_default']['f']:.4f}"
        )

    def mean(values):
        return round(sum(values) / len(values), 4)

    hf_f = mean([r["hf"]["seqeval_default"]["f"] for r in runs])
    ours_f = mean([r["ours"]["seqeval_default"]["f"] for r in runs])
    result = {
        "epochs": epochs,
        "data": str(data),
        "seeds": seed_list,
        "ours_settings": {
            "steps": steps,
            "batch_tokens": batch_tokens,
            "batch_docs": batch_docs,
            "learn_rate": learn_rate,
            "train_docs": n_docs,
            "overrides": overrides,
            "config": str(config),
        },
        "runs": runs,
        "mean": {
            "hf_f1": hf_f,
            "ours_f1": ours_f,
            "ours_process_seconds": mean([r["ours"]["process_seconds"] for r in runs]),
        },
    }
    verdict = {
        "f1_ours_minus_hf (seqeval default, mean over seeds)": round(ours_f - hf_f, 4),
        "seeds_where_ours_f1_is_at_least_hf": sum(
            r["ours"]["seqeval_default"]["f"] >= r["hf"]["seqeval_default"]["f"] for r in runs
        ),
    }
    if not skip_hf:
        result["mean"]["hf_process_seconds"] = mean([r["hf_process_seconds"] for r in runs])
        verdict["wall_ours_over_hf"] = round(
            result["mean"]["ours_process_seconds"] / result["mean"]["hf_process_seconds"], 3
        )
    result["verdict"] = verdict
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
