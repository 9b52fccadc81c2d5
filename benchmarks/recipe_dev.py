"""Variants of the default recipe, compared on a corpus's dev split only: the place to choose a recipe change.

`benchmarks/train_vs_hf.py` scores the recipe on test against HF's; a change chosen by that test score would be tuned
on test. This script trains the default recipe (project.yml's `config`) and each variant (config overrides, as
`scripts/train.py` takes them) on one corpus and seed, as `train_vs_hf.py` does (`scripts/train.py`, then
`scripts/calibrate.py` on dev), and reports dev only: the budget (steps, evaluations), the best dev F1 and the step
that reached it (model-best), the last evaluation's, the calibrated dev F1 with its `outside_bias`, and what the
calibration is worth out of sample (`split_half`: the bias chosen on one random half of dev's documents, scored on the
other half against bias 0). It never reads test. Wall seconds are recorded per training; they compare only trainings run alone, one after the other.

    python benchmarks/recipe_dev.py --data corpus/so_tech --seed 1 --epochs 4.38 \
        --variant "default=" --variant "steps2x=--budget.batch_words 300 --budget.evals_per_epoch 1" \
        --work /tmp/recipe_dev --out benchmarks/results/recipe_dev_so_tech.json

`--resume` keeps the variants already trained in --work; `--no-train` writes the results file from --work only.
"""

import json
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional

import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's tech_ner, not an installed one

from train_vs_hf import code_version, corpus_epochs, machine, run  # noqa: E402


def train_variant(data: Path, config: Path, epochs: float, seed: int, overrides: List[str], work: Path) -> Dict:
    """Train and calibrate one variant on `data`'s train and dev splits; write `work/variant.json`."""
    work.mkdir(parents=True, exist_ok=True)
    model = work / "ours"
    train = [sys.executable, "scripts/train.py", str(config), str(model)]
    train += ["--paths.train", str(data / "train.spacy"), "--paths.dev", str(data / "dev.spacy")]
    train += ["--system.seed", str(seed), "--budget.epochs", str(epochs), "--paths.log", str(work / "train_log.jsonl")]
    seconds = run(train + overrides, work / "train.log")
    calibrate = [sys.executable, "scripts/calibrate.py", str(model / "model-best"), str(data / "dev.spacy")]
    calibrate += ["-o", str(model / "model-final"), "--report", str(work / "calibration.json")]
    seconds += run(calibrate, work / "cal.log")
    record = {"overrides": overrides, "seed": seed, "epochs": epochs, "process_seconds": round(seconds, 1)}
    record.update(machine=machine(), code=code_version())
    (work / "variant.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def dev_summary(work: Path) -> Dict:
    """The dev figures of a trained variant in `work`: its training log and calibration report."""
    from tech_ner.evaluation.plots import read_training_log

    log = read_training_log(work / "train_log.jsonl")
    scored = [row for row in log if row.get("score") is not None]
    best = max(scored, key=lambda row: row["score"])
    calibration = json.loads((work / "calibration.json").read_text(encoding="utf-8"))
    at_zero = next(row for row in calibration["sweep"] if row["outside_bias"] == 0.0)
    return {
        "steps": max(row.get("step", 0) for row in log),
        "evaluations": len(scored),
        "dev_f1_per_evaluation": [[row["step"], round(row["score"], 4)] for row in scored],
        "best_dev_f1": round(best["score"], 4),
        "best_step": best["step"],
        "last_dev_f1": round(scored[-1]["score"], 4),
        "model_best_dev": {k: at_zero[k] for k in ("p", "r", "f")},
        "calibrated_dev": {"outside_bias": calibration["chosen"]["outside_bias"]}
        | {k: calibration["chosen"][k] for k in ("p", "r", "f")},
    }


def split_half(model: Path, dev: Path) -> Dict:
    """Calibration out of sample on dev (`tech_ner.evaluation.calibrate.out_of_sample`, as `tech-ner calibrate` runs
    it): over 100 random halvings of dev's documents, the bias with the best F1 on one half, scored on the other half
    against bias 0."""
    import spacy
    from spacy.tokens import DocBin

    import tech_ner  # noqa: F401 (the pipeline's factories)
    from tech_ner.evaluation.calibrate import out_of_sample, sweep

    nlp = spacy.load(model)
    gold = list(DocBin().from_disk(dev).get_docs(nlp.vocab))
    return out_of_sample(sweep(nlp, gold)[1])


def main(
    data: Path = typer.Option(..., help="A corpus folder with train.spacy and dev.spacy"),
    variant: List[str] = typer.Option(
        ..., "--variant", help="'NAME=OVERRIDES' (the overrides as scripts/train.py takes them; empty: the default)"
    ),
    seed: int = typer.Option(0),
    config: Optional[Path] = typer.Option(None, help="Our config (default: project.yml's `config`)"),
    epochs: Optional[float] = typer.Option(None, help="Epochs (default: the config's budget for the corpus)"),
    resume: bool = typer.Option(False, help="Keep the variants already trained in --work"),
    train: bool = typer.Option(True, help="--no-train: write the results file from --work only"),
    work: Path = typer.Option(Path("/tmp/recipe_dev")),
    out: Path = typer.Option(Path("benchmarks/results/recipe_dev.json")),
):
    """Train the default recipe's variants on one corpus and seed, and compare them on its dev split."""
    import srsly

    if config is None:
        config = Path("configs") / f"{srsly.read_yaml(ROOT / 'project.yml')['vars']['config']}.cfg"
    data, work = data.resolve(), work.resolve()
    for split in ("train", "dev"):
        if not (data / f"{split}.spacy").is_file():
            raise SystemExit(
                f"{data / f'{split}.spacy'}: no such file; --data is a folder with train.spacy and dev.spacy"
            )
    parsed = []
    for item in variant:
        name, sep, overrides = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(
                f"--variant {item!r}: expected NAME=OVERRIDES, e.g. 'default=' or 'b300=--budget.batch_words 300'"
            )
        parsed.append((name.strip(), shlex.split(overrides)))
    if epochs is None:
        epochs = round(corpus_epochs(config, data), 2)
    results, missing = {}, []
    for name, overrides in parsed:
        folder = work / name
        done = (folder / "variant.json").is_file() and (folder / "calibration.json").is_file()
        if train and not (resume and done):
            typer.echo(f"{name}: training ({' '.join(overrides) or 'the default'})")
            train_variant(data, config, epochs, seed, overrides, folder)
            done = True
        if not done:
            missing.append(name)
            continue
        record = json.loads((folder / "variant.json").read_text(encoding="utf-8"))
        results[name] = record | dev_summary(folder)
        results[name]["split_half"] = split_half(folder / "ours" / "model-best", data / "dev.spacy")
        row = results[name]
        typer.echo(
            f"{name}: {row['steps']} steps, {row['evaluations']} evaluations; best dev F1 {row['best_dev_f1']:.4f} "
            f"(step {row['best_step']}), calibrated {row['calibrated_dev']['f']:.4f} "
            f"(bias {row['calibrated_dev']['outside_bias']:+.2f}; out of sample {row['split_half']['gain_mean']:+.4f} "
            f"over bias 0); {row['process_seconds']:.0f} s"
        )
    report = {"data": str(data), "config": str(config), "seed": seed, "epochs": epochs, "variants": results}
    if missing:
        report["missing"] = missing
        typer.echo(f"not trained yet in {work}: {', '.join(missing)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    typer.echo(f"Wrote {out}")


if __name__ == "__main__":
    typer.run(main)
