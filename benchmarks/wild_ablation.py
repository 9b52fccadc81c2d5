"""Collect the wild-set ablation: each run's entity P/R/F (spaCy's scorer) on the embedded test split and the wild
dev set, from the metrics.json files that `scripts/evaluate.py` wrote, into one results file.

Each run is trained with `scripts/train.py CONFIG OUT --paths.train corpus/spacy/train.spacy --paths.dev
corpus/spacy/dev.spacy ...` and scored with `scripts/evaluate.py OUT/model-best corpus/spacy/test.spacy
corpus/spacy/wild_dev.spacy --names test,wild_dev --output-dir OUT/metrics`; the wild test split is scored once,
for the run that is shipped, and given with --wild-test.

    python benchmarks/wild_ablation.py --run "A: what changed=runs/A/metrics/metrics.json" ... \
        --wild-test runs/D/metrics_wild_test/metrics.json --out benchmarks/results/wild_ablation.json

--base keeps the runs of an earlier results file first (runs measured in an earlier session are not re-trained).
"""

import json
import platform
from pathlib import Path
from typing import List, Optional

import typer


def scores(path: Path, split: str) -> Optional[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    found = data.get("splits", data).get(split)
    return None if found is None else {k: round(found["spacy"][k], 4) for k in ("ents_p", "ents_r", "ents_f")}


def main(
    run: List[str] = typer.Option(..., "--run", help="'NAME=METRICS_JSON' in the order of the table"),
    wild_test: Optional[Path] = typer.Option(None, "--wild-test", help="metrics.json of the shipped run on wild_test"),
    base: Optional[Path] = typer.Option(
        None, "--base", help="An earlier results file whose runs come first (kept as measured then)"
    ),
    out: Path = typer.Option(Path("benchmarks/results/wild_ablation.json"), "--out"),
):
    rows = json.loads(base.read_text(encoding="utf-8"))["runs"] if base else []
    for item in run:
        name, _, path = item.rpartition("=")
        rows.append({"run": name, "test": scores(Path(path), "test"), "wild_dev": scores(Path(path), "wild_dev")})
        typer.echo(f"{name}: test {rows[-1]['test']}, wild_dev {rows[-1]['wild_dev']}")
    result = {
        "machine": platform.processor() or platform.machine(),
        "runs": rows,
        "shipped_wild_test": scores(wild_test, "wild_test") if wild_test else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"Wrote {out}")


if __name__ == "__main__":
    typer.run(main)
