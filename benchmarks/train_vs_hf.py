"""The default recipe next to the Hugging Face Trainer recipe, on several corpora, same backbone and CPU, one run.

For each corpus (a folder with train.spacy, dev.spacy and test.spacy, as the convert step writes them) and each seed,
both recipes train once, one after the other, for the same number of epochs:

- ours: what `spacy project run all` does with your corpus, no corpus-specific setting: `scripts/train.py` with the
  default config (project.yml's `config`; its `[budget]` derives steps, warm-up, evaluation and early stopping from
  the corpus's size), then `scripts/calibrate.py` on the dev split (the rule for own data: the embedded corpus's own
  workflow calibrates on the wild dev set instead, which HF's recipe has no use for), scored on test by `tech-ner
  evaluate`;
- HF: `benchmarks/hf_trainer_baseline.py` (AutoModelForTokenClassification + Trainer, batch 16, lr 5e-5), scored on
  test with seqeval.

The epochs are what the config's `[budget]` gives the corpus (its word_passes over the train split's words, within
its min and max epochs; or --epochs), given to both; ours may stop early on dev (the epochs it ran are recorded).
Wall times are whole processes: ours, training and calibration; HF's, training and its prediction of the test split
(our scoring of test is not counted). The verdict per corpus: our mean F1 (seqeval, default mode) minus HF's, and
our wall time over HF's pair by pair, the geometric mean over seeds (each result records the CPU it ran on; a pair
whose two trainings ran on different machines, as a resumed run can make, is listed and left out of it). The three
corpora of issue #19, StackOverflow in documents of 10 sentences as the workflow's convert step makes them (HF's
recipe reads them sentence by sentence either way):

    pip install -e ".[bench]"                                            # accelerate, for HF's Trainer
    spacy project run convert                                            # corpus/spacy
    for s in train dev test; do
      python scripts/convert.py ../shared/data/stackoverflow_ner/$s.txt -o corpus/so_tech/$s.spacy -n 10 \
          --drop-so-meta --so-tech                                       # the software types as TECH
      python scripts/convert.py ../shared/data/stackoverflow_ner/$s.txt -o corpus/so_fine/$s.spacy -n 10 \
          --drop-so-meta                                                 # the fine-grained types as they are
    done
    python benchmarks/train_vs_hf.py --corpus embedded=corpus/spacy --corpus so_tech=corpus/so_tech \
        --corpus so_fine=corpus/so_fine --seeds 0,1 --work /tmp/train_vs_hf --resume

A run is long (on 2 cores about 20 min per training); it goes seed by seed, every corpus once before any twice; the
results file is rewritten after every training, so a stopped run keeps what it measured, and --resume skips the
trainings whose results are already in the work folder. A run over several sessions: each session trains some pairs
(a pair's two trainings in one session), and `--no-train` writes the results file from what the work folder holds,
listing what is missing; each training records its machine and the commit it ran from (`code`).
"""

import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's tech_ner, not an installed one

from hf_trainer_baseline import missing_requirement  # noqa: E402


def machine() -> Dict:
    """The CPU this process runs on: a pair's wall ratio holds for one machine (machines differ between sessions).
    `boot` tells two hosts with the same CPU name apart (an AMD EPYC of one session ran our training in 1.5x the
    time of another's), so a pair resumed from another session counts as on two machines."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        boot = ""
    return {
        "cpu": model,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "platform": platform.machine(),
        **({"boot": boot} if boot else {}),
    }


def code_version() -> str:
    """The commit the trainings run from, "+changes" when the package, configs or scripts differ from it (a results
    file gathered over sessions holds trainings of more than one commit)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    changed = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "tech_ner", "configs", "scripts"])
    return head.stdout.strip() + ("+changes" if changed.returncode else "")


def run(cmd: List[str], log: Path) -> float:
    """Run a command from the repository's root, its output into `log`. RETURNS (float): Wall seconds."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: see {log}")
    return time.perf_counter() - t0


def corpus_epochs(config: Path, data: Path) -> float:
    """RETURNS (float): The epochs the config's `[budget]` gives this corpus's train split (0 when it has none)."""
    from spacy.util import load_config

    from tech_ner.training.train import budget_epochs, count_corpus, training_examples

    cfg = load_config(ROOT / config, overrides={"paths.train": str(data / "train.spacy")}, interpolate=True)
    return budget_epochs(cfg.get("budget") or {}, count_corpus(training_examples(cfg)).words)


def train_hf(data: Path, epochs: float, seed: int, work: Path) -> Dict:
    """Train and score the HF Trainer recipe once. RETURNS (Dict): wall seconds, steps, seqeval scores on test."""
    out = work / "hf.json"
    seconds = run(
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
            str(out),
        ],
        work / "hf.log",
    )
    result = json.loads(out.read_text(encoding="utf-8"))
    return {"process_seconds": round(seconds, 1), "steps": result["steps"], **_scores(result)}


def train_ours(data: Path, config: Path, epochs: float, seed: int, work: Path) -> Dict:
    """Train, calibrate and score the default recipe once. RETURNS (Dict): wall seconds (training and calibration),
    steps, the epoch it ended in, the bias chosen, seqeval scores on test."""
    from tech_ner.evaluation.plots import read_training_log

    model = work / "ours"
    seconds = run(
        [
            sys.executable,
            "scripts/train.py",
            str(config),
            str(model),
            "--paths.train",
            str(data / "train.spacy"),
            "--paths.dev",
            str(data / "dev.spacy"),
            "--system.seed",
            str(seed),
            "--budget.epochs",
            str(epochs),
            "--paths.log",
            str(work / "train_log.jsonl"),
        ],
        work / "ours_train.log",
    )
    seconds += run(
        [
            sys.executable,
            "scripts/calibrate.py",
            str(model / "model-best"),
            str(data / "dev.spacy"),
            "-o",
            str(model / "model-final"),
            "--report",
            str(work / "calibration.json"),
        ],
        work / "ours_calibrate.log",
    )
    run(
        [
            sys.executable,
            "-m",
            "tech_ner",
            "evaluate",
            str(model / "model-final"),
            str(data / "test.spacy"),
            "--names",
            "test",
            "-o",
            str(work / "ours_metrics"),
        ],
        work / "ours_eval.log",
    )
    metrics = json.loads((work / "ours_metrics" / "metrics.json").read_text(encoding="utf-8"))["test"]
    log = read_training_log(work / "train_log.jsonl")
    calibration = json.loads((work / "calibration.json").read_text(encoding="utf-8"))
    return {
        "process_seconds": round(seconds, 1),
        "steps": max((row.get("step", 0) for row in log), default=0),
        # spaCy's epoch counter (from 0) at the last evaluation: below the budget when early stopping ended it
        "last_epoch": max((row.get("epoch", 0) for row in log), default=0),
        "outside_bias": calibration["chosen"]["outside_bias"],
        **_scores(metrics),
    }


def _scores(result: Dict) -> Dict:
    return {key: result[key] for key in ("seqeval_default", "seqeval_strict")}


def summary(runs: List[Dict]) -> Dict:
    """The verdict over the seeds both recipes finished: mean F1 of each and their difference, the spread of the
    per-seed F1 differences (one seed is one sample of noise), and wall time pair by pair: the two trainings of a seed
    run one after the other on one machine, while seeds of a resumed run may not share one, so the wall verdict is the
    geometric mean of the per-seed ratios ours / HF, over the pairs not known to span two machines."""

    def mean(values: List[float]) -> float:
        return round(sum(values) / len(values), 4)

    done = [r for r in runs if "ours" in r and "hf" in r]
    if not done:
        return {}
    ours_f = mean([r["ours"]["seqeval_default"]["f"] for r in done])
    hf_f = mean([r["hf"]["seqeval_default"]["f"] for r in done])
    diffs = [r["ours"]["seqeval_default"]["f"] - r["hf"]["seqeval_default"]["f"] for r in done]
    machines = [(r["ours"].get("machine"), r["hf"].get("machine")) for r in done]
    two = [i for i, (a, b) in enumerate(machines) if a and b and a != b]
    ratios = [r["ours"]["process_seconds"] / r["hf"]["process_seconds"] for r in done]
    paired = [x for i, x in enumerate(ratios) if i not in two]
    wall = math.exp(sum(math.log(x) for x in paired) / len(paired)) if paired else None
    return {
        "seeds_done": [r["seed"] for r in done],
        "f1_difference_per_seed_min_max": [round(min(diffs), 4), round(max(diffs), 4)],
        "ours_f1": ours_f,
        "hf_f1": hf_f,
        "f1_ours_minus_hf": round(ours_f - hf_f, 4),
        "ours_process_seconds": mean([r["ours"]["process_seconds"] for r in done]),
        "hf_process_seconds": mean([r["hf"]["process_seconds"] for r in done]),
        "wall_ours_over_hf_per_seed": [round(x, 3) for x in ratios],
        "pairs_on_two_machines": [done[i]["seed"] for i in two],  # left out of the wall verdict
        "pairs_machine_unknown": [r["seed"] for r, (a, b) in zip(done, machines) if not (a and b)],
        "wall_ours_over_hf": round(wall, 3) if wall is not None else None,  # None: no pair timed on one machine
        "target_met": ours_f >= hf_f and wall is not None and wall <= 1.0,
    }


def main(
    corpus: List[str] = typer.Option(
        ..., "--corpus", help="NAME=FOLDER with train.spacy, dev.spacy, test.spacy (repeat for each corpus)"
    ),
    seeds: str = typer.Option("0,1", help="Comma-separated seeds; each trains both recipes once per corpus"),
    config: Optional[Path] = typer.Option(None, help="Our config (default: project.yml's `config`)"),
    epochs: Optional[float] = typer.Option(None, help="Epochs for both recipes (default: the config's budget)"),
    resume: bool = typer.Option(False, help="Keep the trainings already in --work"),
    train: bool = typer.Option(
        True, help="--no-train: no training; the results file from the trainings in --work, those missing listed"
    ),
    work: Path = typer.Option(Path("/tmp/train_vs_hf")),
    out: Path = typer.Option(Path("benchmarks/results/train_vs_hf.json")),
):
    """Train both recipes on each corpus and seed, and write the verdict per corpus."""
    import srsly

    from tech_ner.files.atomic import write_text_atomic

    if config is None:
        config = Path("configs") / f"{srsly.read_yaml(ROOT / 'project.yml')['vars']['config']}.cfg"
    corpora: Dict[str, Path] = {}
    for item in corpus:
        name, sep, folder = item.partition("=")
        if not sep or not re.fullmatch(r"[\w.-]+", name) or name in corpora:
            raise typer.BadParameter(f"--corpus {item!r}: give NAME=FOLDER, each NAME once (letters, digits, . _ -)")
        missing = [f for f in ("train.spacy", "dev.spacy", "test.spacy") if not (Path(folder) / f).is_file()]
        if missing:
            raise typer.BadParameter(f"--corpus {name}: {folder} has no {', '.join(missing)}; run the convert step")
        corpora[name] = Path(folder).resolve()
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {seeds!r}: expected comma-separated integers, like 0,1")
    if not seed_list:
        raise typer.BadParameter("--seeds: give at least one seed, like 0,1")
    if epochs is not None and not epochs > 0:
        raise typer.BadParameter(f"--epochs {epochs}: give a number above 0")
    problem = missing_requirement() if train else None  # before a run of hours, not at its first HF training
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(1)
    epochs_of = {name: epochs if epochs is not None else corpus_epochs(config, data) for name, data in corpora.items()}
    for name, n_epochs in epochs_of.items():
        if not n_epochs > 0:
            raise typer.BadParameter(f"--corpus {name}: {config} gives it no epochs ([budget]): give --epochs")
    work = work.resolve()  # the trainings run from the repository's root
    result: Dict = {
        "config": str(config),
        "seeds": seed_list,
        "machine": {**machine(), "python": platform.python_version(), "platform": platform.platform()},
        "corpora": {name: {"data": str(data), "epochs": epochs_of[name], "runs": []} for name, data in corpora.items()},
    }
    # seed by seed, each corpus in turn: a stopped run has one seed of every corpus before a second of any
    for seed in seed_list:
        for name, data in corpora.items():
            n_epochs = epochs_of[name]
            runs: List[Dict] = result["corpora"][name]["runs"]
            row: Dict = {"seed": seed}
            runs.append(row)
            for recipe in ("hf", "ours"):
                folder = work / name / f"seed{seed}"
                done = folder / f"{recipe}.result.json"
                setup = {"data": str(data), "epochs": n_epochs, "config": str(config)}
                kept = json.loads(done.read_text(encoding="utf-8")) if (resume or not train) and done.is_file() else {}
                if kept.get("setup") == setup:  # an earlier training of the same corpus, budget and config
                    row[recipe] = kept
                elif not train:
                    result["corpora"][name].setdefault("missing", []).append(f"seed {seed} {recipe}")
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                    row[recipe] = {
                        "setup": setup,
                        "machine": machine(),
                        "code": code_version(),
                        **(
                            train_hf(data, n_epochs, seed, folder)
                            if recipe == "hf"
                            else train_ours(data, config, n_epochs, seed, folder)
                        ),
                    }
                    write_text_atomic(done, json.dumps(row[recipe], indent=2) + "\n")
                result["corpora"][name]["verdict"] = summary(runs)
                write_text_atomic(out, json.dumps(result, indent=2) + "\n")
            if "ours" not in row or "hf" not in row:
                continue
            typer.echo(
                f"{name} seed {seed}: F1 ours {row['ours']['seqeval_default']['f']:.4f} "
                f"({row['ours']['process_seconds']:.0f} s), HF {row['hf']['seqeval_default']['f']:.4f} "
                f"({row['hf']['process_seconds']:.0f} s)"
            )
    for name, found in result["corpora"].items():
        v = found.get("verdict")
        if not v:
            typer.echo(f"{name}: no seed trained by both recipes in {work}")
            continue
        ratio = v["wall_ours_over_hf"]
        wall = f"{ratio:.2f}x" if ratio is not None else "unknown (no pair timed on one machine)"
        typer.echo(
            f"{name}: F1 ours {v['ours_f1']:.4f} vs HF {v['hf_f1']:.4f} ({v['f1_ours_minus_hf']:+.4f}; per seed "
            f"{v['f1_difference_per_seed_min_max'][0]:+.4f} to {v['f1_difference_per_seed_min_max'][1]:+.4f}), "
            f"wall {wall}, target {'met' if v['target_met'] else 'NOT met'}"
        )
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
