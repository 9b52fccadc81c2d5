"""RSS over a long run of `tech-ner extract` on realistic documents: does memory stay flat?

--docs documents of about --words words (the embedded corpus sentences, as `inference_speed.py` builds them) are
written to a .jsonl file and run through `tech_ner.apps.extract.extract` (what `tech-ner extract` calls: reading, memory
zones, pieces, the doc cleaner, row writing) with a trained pipeline (--model), in a fresh child process that records
its RSS, the lowest and highest RSS since the last point, and the vocabulary's size, every --every documents. The
verdict: after warm-up (the first --warmup documents, default 10% of the run), the highest RSS stays within 10% of
the highest RSS during warm-up. The results file is rewritten at every point (`"complete": false` until the end), so
a run stopped early still leaves its curve.

    OMP_NUM_THREADS=1 python benchmarks/memory_long_run.py --model /tmp/model/model-best            # 50,000 documents
    OMP_NUM_THREADS=1 python benchmarks/memory_long_run.py --model /tmp/model/model-best --docs 5000

(`long_document.py` shows how to train a quick pipeline; the backbone, not its training, sets memory.)
"""

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import typer

ROOT = Path(__file__).resolve().parent.parent
# this checkout's tech_ner, not an installed one (a script's own folder, not the cwd, is first on sys.path)
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from inference_speed import corpus_sentences, make_documents, run_in_child  # noqa: E402

LIMIT_PCT = 10.0


def measure(args: Dict) -> Dict:
    """In the child: extract every document; every `every` rows record (documents, RSS now, lowest RSS right after
    a batch's freed memory was handed back, highest RSS when a row was written, strings, lexemes), since the last
    point. RSS swings by hundreds of MB within each batch (its tensors, freed and trimmed after it), so one reading
    every N documents lands on a random phase of that swing: the lowest (what stays between batches) and highest
    readings are what can show growth."""
    import psutil
    import torch

    import tech_ner.apps.extract
    from tech_ner.files.atomic import write_text_atomic
    from tech_ner.apps.extract import extract
    from tech_ner.apps.inference import load_pipeline

    process = psutil.Process()
    nlp = load_pipeline(args["model"])
    every = args["every"]
    mb = lambda: round(process.memory_info().rss / 2**20, 1)  # noqa: E731
    now = mb()
    curve: List = [[0, now, now, now, len(nlp.vocab.strings), len(nlp.vocab)]]
    window: Dict = {"n": 0, "low": None, "high": 0.0}
    trim = tech_ner.apps.extract._malloc_trim()

    def trim_and_read() -> None:
        trim()
        rss = mb()
        window["low"] = rss if window["low"] is None else min(window["low"], rss)

    tech_ner.apps.extract._malloc_trim = lambda: trim_and_read  # extract trims after every batch: read RSS just then

    def on_row(row, words: int) -> None:
        rss = mb()
        window["n"] += 1
        window["high"] = max(window["high"], rss)
        if window["n"] % every == 0:
            curve.append([window["n"], rss, window["low"], window["high"], len(nlp.vocab.strings), len(nlp.vocab)])
            window["low"], window["high"] = None, 0.0
            # a long run can be stopped at any point and still leave its curve so far
            write_text_atomic(
                args["out"],
                json.dumps(
                    {
                        **args["meta"],
                        "complete": False,
                        "documents_done": window["n"],
                        **verdict(curve, args["warmup"]),
                        "points_docs_rss_low_high_mb_strings_lexemes": curve,
                    },
                    indent=2,
                ),
            )

    t0 = time.perf_counter()
    stats = extract(
        nlp,
        [args["docs_file"]],
        args["out_file"],
        batch_size=args["batch_size"],
        zone_docs=args["zone_docs"],
        on_row=on_row,
    )
    seconds = time.perf_counter() - t0
    if curve[-1][0] != stats.rows:
        curve.append([stats.rows, mb(), window["low"], window["high"], len(nlp.vocab.strings), len(nlp.vocab)])
    return {
        "rows": stats.rows,
        "errors": stats.errors,
        "seconds": round(seconds, 1),
        "docs_per_s": round(stats.docs_per_s, 1),
        "words_per_s": round(stats.words_per_s),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "points": curve,
        "rss_after_run_mb": mb(),
    }


def verdict(points: List, warmup: int) -> Dict:
    """The highest RSS up to the end of warm-up against the highest after it (and the same for the lowest)."""
    before = [p for p in points if p[0] <= warmup]
    after = [p for p in points if p[0] > warmup] or before[-1:]
    at_warmup, peak_after = max(p[3] for p in before), max(p[3] for p in after)
    # the lowest reading after a trim in warm-up against the highest such low after it (None: no trim in a window)
    lows_before = [p[2] for p in before[1:] if p[2] is not None] or [before[0][1]]
    lows_after = [p[2] for p in after if p[2] is not None] or lows_before
    low_warmup, low_after = min(lows_before), max(lows_after)
    growth = round(100 * (peak_after - at_warmup) / at_warmup, 2)
    floor_growth = round(100 * (low_after - low_warmup) / low_warmup, 2)
    flat = growth <= LIMIT_PCT
    return {
        "warmup_docs": warmup,
        "peak_rss_in_warmup_mb": at_warmup,
        "peak_rss_after_warmup_mb": peak_after,
        "growth_after_warmup_pct": growth,
        "lowest_rss_in_warmup_mb": low_warmup,
        "highest_window_low_after_warmup_mb": low_after,
        "floor_growth_after_warmup_pct": floor_growth,
        "within_10pct": flat,
        "verdict": f"RSS {'within' if flat else 'NOT within'} {LIMIT_PCT:g}% after warm-up ({growth:+.1f}%: at most "
        f"{at_warmup:,.0f} MB in the first {warmup:,} documents, at most {peak_after:,.0f} MB after; "
        f"between batches {low_warmup:,.0f} MB, then at most {low_after:,.0f} MB)",
    }


def main(
    model: Optional[str] = typer.Option(None, help="Trained pipeline folder or package (required)"),
    docs: int = typer.Option(50_000, min=1, help="Documents"),
    words: int = typer.Option(300, min=1, help="Words per document (about)"),
    every: int = typer.Option(1000, min=1, help="Record RSS every this many documents"),
    warmup: Optional[int] = typer.Option(None, help="Warm-up documents (default: 10% of --docs, at least --every)"),
    batch_size: int = typer.Option(64, help="tech-ner extract --batch-size"),
    zone_docs: int = typer.Option(2000, help="Documents per memory zone (extract's zone_docs)"),
    bio_dir: Path = typer.Option(Path("corpus/bio")),
    out: Path = typer.Option(Path("benchmarks/results/memory_long_run.json")),
    child: Optional[str] = typer.Option(None, hidden=True),
):
    if child is not None:
        print(json.dumps(measure(json.loads(child))))
        return
    from tech_ner.files.atomic import write_text_atomic

    if model is None or not (Path(model).exists() or "/" not in model):
        raise typer.BadParameter(f"{model}: give a trained pipeline with --model (see benchmarks/long_document.py)")
    warmup = warmup if warmup is not None else max(every, docs // 10)
    texts = make_documents(corpus_sentences(ROOT / bio_dir), docs, words)
    with tempfile.TemporaryDirectory() as tmp:
        docs_file = Path(tmp) / "docs.jsonl"
        docs_file.write_text(
            "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
        )
        n_words = sum(len(t.split()) for t in texts)
        del texts
        typer.echo(f"{docs:,} documents, {n_words:,} words ...", err=True)
        meta = {
            "model": str(model),
            "documents": docs,
            "words": n_words,
            "words_per_doc_target": words,
            "batch_size": batch_size,
            "zone_docs": zone_docs,
            "every": every,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        r = run_in_child(
            Path(__file__),
            {
                "model": str(model),
                "docs_file": str(docs_file),
                "out_file": str(Path(tmp) / "rows.jsonl"),
                "every": every,
                "batch_size": batch_size,
                "zone_docs": zone_docs,
                "out": str(out),
                "warmup": warmup,
                "meta": meta,
            },
            "the run",
        )
    result = {
        **meta,
        "complete": True,
        "documents_done": r["rows"],
        **verdict(r["points"], warmup),
        "peak_rss_mb": r["peak_rss_mb"],
        "seconds": r["seconds"],
        "docs_per_s": r["docs_per_s"],
        "words_per_s": r["words_per_s"],
        "rows": r["rows"],
        "errors": r["errors"],
        "torch_threads": r["torch_threads"],
        "torch": r["torch"],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "rss_after_run_mb": r["rss_after_run_mb"],
        "points_docs_rss_low_high_mb_strings_lexemes": r["points"],
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(f"{result['verdict']}; {r['docs_per_s']} docs/s; wrote {out}")


if __name__ == "__main__":
    typer.run(main)
