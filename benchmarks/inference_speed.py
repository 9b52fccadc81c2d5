"""Inference speed, memory and accuracy of our CPU path, next to Hugging Face, in one run.

On the same trained pipeline (--model) and the same N documents of about W words
(built deterministically from the embedded corpus sentences in corpus/bio/*.tsv),
each measurement in a fresh subprocess (peak RSS is the child's own ru_maxrss, from
os.wait4):

  ours_fp32     our extractor path (`tech_ner.apps.extract.extract_rows`: nlp.pipe, doc
                cleaner, memory zones), fp32; with the RSS curve over the run
  hf_pipeline   transformers' pipeline("token-classification", aggregation_strategy="simple")
                over AutoModelForTokenClassification from the pipeline's own backbone
                weights (a fresh head: head weights don't matter for speed)
  bare_forward  the HF tokenizer and model forward pass alone over the same text, fp32
  ours_bf16     our path with bf16 autocast     (tech_ner.pipeline.precision)
  ours_int8     our path with int8 dynamic quantisation

plus entity F1 of fp32, bf16 and int8 on the test split, and the entity difference
between one 20,000-word document and its paragraphs piped one by one. Words are
whitespace-separated words of the input text, for every measurement.

    python benchmarks/inference_speed.py --model training/model-best               # 2,000 docs x 300 words
    python benchmarks/inference_speed.py --docs 200 --words 300 --out /tmp/small.json
    python benchmarks/inference_speed.py --docs 200000 --words 1 --clip-words 10 --runs ours_fp32 --no-f1 --long-words 0 \
        --out benchmarks/results/memory_200k.json                                   # RSS over a long run
"""

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import typer

ROOT = Path(__file__).resolve().parent.parent
RUNS = ("ours_fp32", "hf_pipeline", "bare_forward", "ours_bf16", "ours_int8")
PUNCT_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "'s", "n't"}


# ---------------------------------------------------------------------------- documents


def corpus_sentences(bio_dir: Path) -> List[str]:
    """The embedded corpus sentences as plain text, in file order (dev, test, train)."""
    sentences: List[str] = []
    for path in sorted(bio_dir.glob("*.tsv")):
        words: List[str] = []
        for line in path.read_text(encoding="utf-8").splitlines() + [""]:
            if line.strip():
                words.append(line.split("\t")[0])
            elif words:
                sentences.append(detokenize(words))
                words = []
    return sentences


def detokenize(words: List[str]) -> str:
    out = ""
    for w in words:
        if out and w not in PUNCT_BEFORE and not out.endswith(("(", "[")):
            out += " "
        out += w
    return out


def make_documents(sentences: List[str], n_docs: int, n_words: int, seed: int = 0) -> List[str]:
    """N documents of about n_words words each: corpus sentences in a seeded order, reshuffled per pass."""
    rng = random.Random(seed)
    order: List[int] = []
    docs: List[str] = []
    for _ in range(n_docs):
        parts, count = [], 0
        while count < n_words:
            if not order:
                order = list(range(len(sentences)))
                rng.shuffle(order)
            sent = sentences[order.pop()]
            parts.append(sent)
            count += len(sent.split())
        docs.append(" ".join(parts))
    return docs


def make_long_document(sentences: List[str], n_words: int, paragraph_words: int = 200, seed: int = 1) -> str:
    """One document of n_words words in paragraphs of about paragraph_words words, separated by blank lines."""
    paragraphs = make_documents(sentences, max(1, n_words // paragraph_words), paragraph_words, seed=seed)
    return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------- child measurements


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def load_ours(model: str, precision: str, window: Optional[int], stride: Optional[int]):
    from tech_ner.apps.inference import load_pipeline
    from tech_ner.pipeline.span_getters import configure_sentence_windows

    nlp = load_pipeline(model, precision=precision)
    if window:
        nlp.get_pipe("transformer").model.attrs["get_spans"] = configure_sentence_windows(window, stride or window)
    return nlp


def measure_ours(args: Dict) -> Dict:
    from tech_ner.apps.extract import count_words, extract_rows
    from tech_ner.apps.records import Record

    texts = read_texts(args["docs_file"])
    nlp = load_ours(args["model"], args["precision"], args.get("window"), args.get("stride"))
    list(
        extract_rows(nlp, [Record(i, i, t) for i, t in enumerate(texts[:8])], batch_size=args["batch_size"])
    )  # warm-up
    every = max(1, len(texts) // 400)
    curve = [(0, round(rss_mb(), 1))]
    words = entities = 0
    t0 = time.perf_counter()
    records = (Record(i, i, t) for i, t in enumerate(texts))
    for i, row in enumerate(extract_rows(nlp, records, batch_size=args["batch_size"]), 1):
        entities += len(row["spans"])
        if i % every == 0:
            curve.append((i, round(rss_mb(), 1)))
    seconds = time.perf_counter() - t0
    words = sum(count_words(t) for t in texts)
    return {
        "seconds": round(seconds, 2),
        "words_per_s": round(words / seconds),
        "docs_per_s": round(len(texts) / seconds, 1),
        "entities": entities,
        "rss_curve": rss_summary(curve, len(texts)),
    }


def rss_summary(curve: List, n_docs: int) -> Dict:
    """RSS after warm-up (the first 10,000 documents, or 5% of a shorter run) against the highest RSS after it."""
    warmup = min(10_000, max(1, n_docs // 20))
    before = [mb for n, mb in curve if n <= warmup]
    after = [mb for n, mb in curve if n > warmup]
    at_warmup = max(before)
    peak_after = max(after) if after else at_warmup
    growth = 100 * (peak_after - at_warmup) / at_warmup
    step = max(1, len(curve) // 100)
    return {
        "warmup_docs": warmup,
        "rss_at_warmup_mb": at_warmup,
        "peak_rss_after_warmup_mb": peak_after,
        "final_rss_mb": curve[-1][1],
        "growth_after_warmup_pct": round(growth, 2),
        "flat_within_10pct": growth <= 10.0,
        "points_docs_mb": curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else []),
    }


def export_backbone(args: Dict) -> Dict:
    """Save the pipeline's transformer weights and tokenizer as a Hugging Face folder."""
    import spacy
    import torch

    import tech_ner.pipeline  # noqa: F401
    from tech_ner.pipeline.precision import find_transformers

    nlp = spacy.load(args["model"])
    trf = find_transformers(nlp)[0][1].model
    trf.transformer.save_pretrained(args["folder"])
    trf.tokenizer.save_pretrained(args["folder"])
    return {"torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def measure_hf_pipeline(args: Dict) -> Dict:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized head" is expected
    texts = read_texts(args["docs_file"])
    tok = AutoTokenizer.from_pretrained(args["backbone"])
    model = AutoModelForTokenClassification.from_pretrained(
        args["backbone"],
        num_labels=3,
        id2label={0: "O", 1: "B-TECH", 2: "I-TECH"},
        label2id={"O": 0, "B-TECH": 1, "I-TECH": 2},
    ).eval()
    ner = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple", device=-1)
    ner(texts[:8], batch_size=args["batch_size"])
    t0 = time.perf_counter()
    entities = 0
    with torch.inference_mode():
        for out in ner(texts, batch_size=args["batch_size"]):
            entities += len(out)
    seconds = time.perf_counter() - t0
    words = sum(len(t.split()) for t in texts)
    return {
        "seconds": round(seconds, 2),
        "words_per_s": round(words / seconds),
        "docs_per_s": round(len(texts) / seconds, 1),
        "entities_random_head": entities,
    }


def measure_bare(args: Dict) -> Dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = read_texts(args["docs_file"])
    tok = AutoTokenizer.from_pretrained(args["backbone"])
    model = AutoModel.from_pretrained(args["backbone"]).eval()
    batch = args["bare_batch"]

    def run(chunk):
        # every wordpiece is encoded: longer texts overflow into extra 512-piece sequences
        enc = tok(
            chunk,
            truncation=True,
            max_length=512,
            return_overflowing_tokens=True,
            padding="longest",
            return_tensors="pt",
        )
        enc.pop("overflow_to_sample_mapping", None)
        with torch.inference_mode():
            return model(**enc).last_hidden_state.shape[0]

    run(texts[:8])
    t0 = time.perf_counter()
    sequences = sum(run(texts[i : i + batch]) for i in range(0, len(texts), batch))
    seconds = time.perf_counter() - t0
    words = sum(len(t.split()) for t in texts)
    return {
        "seconds": round(seconds, 2),
        "words_per_s": round(words / seconds),
        "docs_per_s": round(len(texts) / seconds, 1),
        "sequences": sequences,
        "batch_docs": batch,
    }


def measure_f1(args: Dict) -> Dict:
    from tech_ner.evaluation.evaluate import evaluate_corpus

    nlp = load_ours(args["model"], args["precision"], args.get("window"), args.get("stride"))
    result = evaluate_corpus(nlp, [args["test"]], batch_size=args["batch_size"])
    return {
        "ents_f": round(result["spacy"]["ents_f"], 4),
        "seqeval_strict_f": round(result["seqeval_strict"]["f"], 4),
        "raw_text_f": round(result["raw_text"]["f"], 4) if result.get("raw_text") else None,
    }


def measure_long(args: Dict) -> Dict:
    """Entities of one long document (with span-getter windows, and cut at max_length) against its paragraphs one by one."""
    from tech_ner.apps.extract import extract_rows
    from tech_ner.apps.records import Record

    text = read_texts(args["docs_file"])[0]
    nlp = load_ours(args["model"], "fp32", args.get("window"), args.get("stride"))

    def ents_of_whole() -> set:
        row = next(iter(extract_rows(nlp, [Record(0, 0, text)])))
        return {(s["start"], s["end"], s["label"]) for s in row["spans"]}

    t0 = time.perf_counter()
    whole = ents_of_whole()
    whole_s = time.perf_counter() - t0
    starts, pos = [], 0
    paragraphs = text.split("\n\n")
    for p in paragraphs:
        starts.append(pos)
        pos += len(p) + 2
    t0 = time.perf_counter()
    records = [Record(i, i, p) for i, p in enumerate(paragraphs)]
    by_paragraph = set()
    for start, row in zip(starts, extract_rows(nlp, records)):
        by_paragraph |= {(s["start"] + start, s["end"] + start, s["label"]) for s in row["spans"]}
    para_s = time.perf_counter() - t0
    nlp.max_length = max(1000, len(text) // 10)  # force the split path: about ten pieces
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = ents_of_whole()

    def compare(a: set, b: set) -> Dict:
        both = len(a & b)
        return {
            "same": both,
            "only_first": len(a - b),
            "only_second": len(b - a),
            "agreement_f1": round(2 * both / (len(a) + len(b)), 4) if a or b else 1.0,
        }

    return {
        "words": len(text.split()),
        "paragraphs": len(paragraphs),
        "characters": len(text),
        "entities_whole": len(whole),
        "entities_paragraphs": len(by_paragraph),
        "whole_vs_paragraphs": compare(whole, by_paragraph),
        "split_at_max_length": {
            "max_length": nlp.max_length,
            "entities": len(split),
            "vs_whole": compare(split, whole),
        },
        "seconds_whole": round(whole_s, 2),
        "seconds_paragraphs": round(para_s, 2),
    }


MEASURES = {
    "export": export_backbone,
    "ours": measure_ours,
    "hf_pipeline": measure_hf_pipeline,
    "bare": measure_bare,
    "f1": measure_f1,
    "long": measure_long,
}


def read_texts(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


# ---------------------------------------------------------------------------- parent


def run_in_child(script: Path, payload: Dict, what: str) -> Dict:
    """Run `python SCRIPT --child PAYLOAD` in a fresh interpreter (the benchmarks' way to measure one process).

    RETURNS (Dict): the JSON object the child printed last, plus its peak_rss_mb (ru_maxrss) and process_seconds.
    """
    cmd = [sys.executable, str(Path(script).resolve()), "--child", json.dumps(payload)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["process_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def in_child(kind: str, args: Dict) -> Dict:
    """Run one measurement of this script in a fresh interpreter; see `run_in_child`."""
    return run_in_child(Path(__file__), {"kind": kind, **args}, kind)


def ratio(a: Optional[Dict], b: Optional[Dict], key: str = "words_per_s") -> Optional[float]:
    """RETURNS (Optional[float]): a[key] / b[key] to 3 places; None when either run is missing."""
    if not a or not b:
        return None
    return round(a[key] / b[key], 3)


def main(
    model: str = typer.Option("training/model-best", help="Trained pipeline folder or package"),
    docs: int = typer.Option(2000, help="Documents"),
    words: int = typer.Option(300, help="Words per document (about)"),
    batch_size: int = typer.Option(64, help="Documents per nlp.pipe / HF pipeline batch"),
    bare_batch: int = typer.Option(16, help="Documents per batch of the bare forward pass"),
    window: Optional[int] = typer.Option(None, help="Override the span getter's window (spaCy tokens)"),
    stride: Optional[int] = typer.Option(None, help="... and stride (default: the window)"),
    clip_words: int = typer.Option(
        0, help="Cut every document to its first N words (0: no cut), for long runs of short documents"
    ),
    runs: str = typer.Option(",".join(RUNS), help="Comma list of " + ", ".join(RUNS)),
    repeats: int = typer.Option(1, help="Rounds of the speed runs, in rotation; the fastest of each counts"),
    f1: bool = typer.Option(True, "--f1/--no-f1", help="Entity F1 of each precision on --test"),
    test: Path = typer.Option(Path("corpus/spacy/test.spacy")),
    long_words: int = typer.Option(20_000, help="Words of the long document (0: skip)"),
    bio_dir: Path = typer.Option(Path("corpus/bio")),
    out: Path = typer.Option(Path("benchmarks/results/inference_speed.json")),
    child: Optional[str] = typer.Option(None, hidden=True),
):
    if child is not None:
        args = json.loads(child)
        print(json.dumps(MEASURES[args.pop("kind")](args)))
        return
    from tech_ner.files.atomic import write_text_atomic

    wanted = [r.strip() for r in runs.split(",") if r.strip()]
    unknown = set(wanted) - set(RUNS)
    if unknown:
        raise typer.BadParameter(f"unknown runs {sorted(unknown)}; choose from {', '.join(RUNS)}")
    if not (Path(model).exists() or "/" not in model):
        raise typer.BadParameter(f"{model}: no such pipeline (train one first, or pass --model)")
    if f1 and not test.exists():  # checked before the speed runs, not after them
        raise typer.BadParameter(f"--test {test}: no such file (spacy project run convert makes it; or --no-f1)")
    sentences = corpus_sentences(ROOT / bio_dir)
    texts = make_documents(sentences, docs, words)
    if clip_words:
        texts = [" ".join(t.split()[:clip_words]) for t in texts]
    common = {"model": str(model), "batch_size": batch_size, "window": window, "stride": stride}
    result: Dict = {
        "model": str(model),
        "documents": docs,
        "words_per_doc_target": words,
        "clip_words": clip_words,
        "words": sum(len(t.split()) for t in texts),
        "batch_size": batch_size,
        "repeats": repeats,
        "span_getter_override": {"window": window, "stride": stride} if window else None,
        "torch_threads": None,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": None,
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs_file = tmp / "docs.jsonl"
        docs_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        backbone = tmp / "backbone"
        # in a child too: a child's ru_maxrss starts at the parent's RSS when it forked, so the parent stays small
        exported = in_child("export", {"model": str(model), "folder": str(backbone)})
        result["torch_threads"], result["torch"] = exported["torch_threads"], exported["torch"]
        # round robin, so a neighbour's load on a shared machine hits every measurement alike; the fastest counts
        for rep in range(repeats):
            for name in wanted:
                typer.echo(f"measuring {name} ({rep + 1}/{repeats}) ...", err=True)
                if name.startswith("ours_"):
                    r = in_child("ours", {**common, "docs_file": str(docs_file), "precision": name[5:]})
                elif name == "hf_pipeline":
                    r = in_child("hf_pipeline", {**common, "docs_file": str(docs_file), "backbone": str(backbone)})
                else:
                    r = in_child(
                        "bare",
                        {**common, "docs_file": str(docs_file), "backbone": str(backbone), "bare_batch": bare_batch},
                    )
                typer.echo(f"  {name}: {r['words_per_s']:,} words/s, peak RSS {r['peak_rss_mb']} MB", err=True)
                best = result["runs"].get(name)
                every = (best or {}).get("all_words_per_s", []) + [r["words_per_s"]]
                if best is None or r["words_per_s"] > best["words_per_s"]:
                    best = r
                best["all_words_per_s"] = every
                result["runs"][name] = best
        if f1:
            result["f1"] = {}
            for precision in ("fp32", "bf16", "int8"):
                typer.echo(f"F1 {precision} ...", err=True)
                result["f1"][precision] = in_child("f1", {**common, "precision": precision, "test": str(ROOT / test)})
        if long_words:
            long_file = tmp / "long.jsonl"
            long_file.write_text(
                json.dumps({"text": make_long_document(sentences, long_words)}) + "\n", encoding="utf-8"
            )
            typer.echo("long document ...", err=True)
            result["long_document"] = in_child("long", {**common, "docs_file": str(long_file)})
    runs_ = result["runs"]
    fast = max(
        (runs_[n] for n in ("ours_bf16", "ours_int8") if n in runs_), key=lambda r: r["words_per_s"], default=None
    )
    result["ratios"] = {
        "ours_fp32_over_bare_forward": ratio(runs_.get("ours_fp32"), runs_.get("bare_forward")),
        "ours_bf16_over_ours_fp32": ratio(runs_.get("ours_bf16"), runs_.get("ours_fp32")),
        "ours_int8_over_ours_fp32": ratio(runs_.get("ours_int8"), runs_.get("ours_fp32")),
        "fastest_cpu_path_over_ours_fp32": ratio(fast, runs_.get("ours_fp32")),
        "fastest_cpu_path_over_hf_pipeline": ratio(fast, runs_.get("hf_pipeline")),
    }
    result["targets"] = {
        "ours_fp32_over_bare_forward": ">= 0.85",
        "fastest_cpu_path_over_ours_fp32": ">= 1.7",
        "fastest_cpu_path_over_hf_pipeline": ">= 1.5",
        "rss": "after the first 10,000 documents, RSS stays within 10% of its level then",
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("runs",)}
    summary["words_per_s"] = {k: v["words_per_s"] for k, v in runs_.items()}
    summary["peak_rss_mb"] = {k: v["peak_rss_mb"] for k, v in runs_.items()}
    if "ours_fp32" in runs_:
        curve = dict(runs_["ours_fp32"]["rss_curve"])
        curve.pop("points_docs_mb")
        summary["rss_curve_ours_fp32"] = curve
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(f"Wrote {out}")


if __name__ == "__main__":
    typer.run(main)
