"""Peak memory and wall time of one very long document through `tech-ner extract`.

One document of --mb megabytes of prose (the embedded corpus sentences in paragraphs of about 200 words, separated
by blank lines, as `inference_speed.py` builds them) is written to a .txt file and run through `tech_ner.apps.extract.extract`
(what `tech-ner extract` calls) with a trained pipeline (--model), in a fresh child process. The child's peak RSS is its
own ru_maxrss (from os.wait4), so it counts the model, the text and everything the run allocates. The target: peak RSS
under 2 GB, whatever the document's length (texts are cut into pieces of at most --max-piece-chars characters).

It needs a trained pipeline; none is trained here. A quick one is enough for memory and time (the backbone's size,
not its training, sets both):

    python scripts/convert.py corpus/bio/train.tsv -o corpus/spacy/train.spacy -n 10 --strict   # and dev.tsv
    SPACY_CONFIG_OVERRIDES="--training.max_steps=20" python scripts/train.py configs/cpu_minilm.cfg /tmp/model \\
        --paths.train corpus/spacy/train.spacy --paths.dev corpus/spacy/dev.spacy
    OMP_NUM_THREADS=1 python benchmarks/long_document.py --model /tmp/model/model-best --mb 10
"""

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import typer

ROOT = Path(__file__).resolve().parent.parent
# this checkout's tech_ner, not an installed one (a script's own folder, not the cwd, is first on sys.path)
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from inference_speed import corpus_sentences, make_long_document, run_in_child  # noqa: E402

from tech_ner.apps.extract import DEFAULT_MAX_PIECE_CHARS  # noqa: E402

TARGET_MB = 2048


def make_text(mb: float, bio_dir: Path) -> str:
    """About `mb` million characters of paragraphs (the corpus averages about 6 characters per word)."""
    sentences = corpus_sentences(bio_dir)
    text = make_long_document(sentences, max(200, int(mb * 1e6 / 6.2)))
    return text[: int(mb * 1e6)].rsplit(" ", 1)[0]


def measure(args: Dict) -> Dict:
    """In the child: load the pipeline, extract the one document, check its row."""
    import psutil
    import torch

    from tech_ner.apps.extract import extract
    from tech_ner.apps.inference import load_pipeline, split_text

    text = Path(args["text_file"]).read_text(encoding="utf-8")
    nlp = load_pipeline(args["model"])
    rss_loaded = psutil.Process().memory_info().rss / 2**20
    out = Path(args["out_file"])
    t0 = time.perf_counter()
    stats = extract(
        nlp, [args["text_file"]], out, max_piece_chars=args["max_piece_chars"], batch_size=args["batch_size"]
    )
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    spans = rows[0]["spans"]
    assert len(rows) == 1 and rows[0]["error"] is None, rows[0]["error"]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in spans), "span offsets must be the text's own"
    return {
        "seconds": round(seconds, 1),
        "words_per_s": round(stats.words / seconds),
        "words": stats.words,
        "pieces": len(split_text(text, min(args["max_piece_chars"], nlp.max_length))),
        "entities": len(spans),
        "terms": len(rows[0]["terms"]),
        "last_entity_end": spans[-1]["end"] if spans else None,
        "rss_after_load_mb": round(rss_loaded, 1),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(
    model: Optional[str] = typer.Option(None, help="Trained pipeline folder or package (required; see the docstring)"),
    mb: float = typer.Option(10.0, help="Size of the document in millions of characters"),
    max_piece_chars: int = typer.Option(DEFAULT_MAX_PIECE_CHARS, help="tech-ner extract --max-piece-chars"),
    batch_size: int = typer.Option(64, help="Pieces per nlp.pipe batch"),
    bio_dir: Path = typer.Option(Path("corpus/bio")),
    out: Path = typer.Option(Path("benchmarks/results/long_document.json")),
    child: Optional[str] = typer.Option(None, hidden=True),
):
    if child is not None:
        print(json.dumps(measure(json.loads(child))))
        return
    from tech_ner.files.atomic import write_text_atomic

    if model is None or not (Path(model).exists() or "/" not in model):
        raise typer.BadParameter(f"{model}: give a trained pipeline with --model (the docstring shows a quick one)")
    text = make_text(mb, ROOT / bio_dir)
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "long.txt"
        text_file.write_text(text, encoding="utf-8")
        typer.echo(f"one document of {len(text):,} characters, {len(text.split()):,} words ...", err=True)
        r = run_in_child(
            Path(__file__),
            {
                "model": str(model),
                "text_file": str(text_file),
                "out_file": str(Path(tmp) / "rows.jsonl"),
                "max_piece_chars": max_piece_chars,
                "batch_size": batch_size,
            },
            "the measurement",
        )
    result = {
        "model": str(model),
        "characters": len(text),
        "megabytes": round(len(text.encode("utf-8")) / 1e6, 2),
        "max_piece_chars": max_piece_chars,
        "batch_size": batch_size,
        **r,
        "target": f"peak RSS < {TARGET_MB} MB",
        "within_target": r["peak_rss_mb"] < TARGET_MB,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(
        f"{result['megabytes']} MB document ({r['pieces']} pieces, {r['entities']:,} entities): peak RSS "
        f"{r['peak_rss_mb']:,} MB (target < {TARGET_MB}), {r['seconds']} s ({r['words_per_s']:,} words/s); wrote {out}"
    )


if __name__ == "__main__":
    typer.run(main)
