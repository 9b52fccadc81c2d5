"""`tech-ner calibrate`: choose a trained pipeline's outside_bias on a held-out set and write the pipeline with it."""

import json
from pathlib import Path
from typing import Any, Optional, Tuple

import typer

from ..corpus.docbin import INFO_FILE
from ..files.problems import InputError, friendly_errors


WILD_MIN_PRECISION = 0.85  # the project's precision target on text of another hand (issue #17)


def calibration_data(corpus_dir: Path) -> Tuple[Path, float]:
    """The held-out set and precision floor for a corpus folder the convert step wrote (its corpus.json says which).

    The embedded corpus calibrates on the wild dev set with the project's precision target, 0.85, as the floor (on
    text of another hand the model's errors are false alarms); own data on its dev split with no floor.
    """
    try:
        embedded = bool(json.loads((corpus_dir / INFO_FILE).read_text(encoding="utf-8")).get("embedded"))
    except (OSError, ValueError, AttributeError) as e:
        raise InputError(corpus_dir / INFO_FILE, None, f"cannot read it ({e}); run the convert step first") from None
    return (corpus_dir / "wild_dev.spacy", WILD_MIN_PRECISION) if embedded else (corpus_dir / "dev.spacy", 0.0)


@friendly_errors
def calibrate_command(
    model: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Trained pipeline folder, e.g. training/model-best"
    ),
    data: Optional[Path] = typer.Argument(
        None, exists=True, dir_okay=False, help="Held-out gold .spacy file (not the test split)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the calibrated pipeline"),
    corpus_dir: Optional[Path] = typer.Option(
        None,
        "--corpus-dir",
        help="Instead of DATA: a folder the convert step wrote (wild dev for the embedded corpus, dev for own data)",
    ),
    beta: float = typer.Option(1.0, "--beta", help="Maximise F-beta: below 1 favours precision, above 1 recall"),
    min_precision: Optional[float] = typer.Option(
        None,
        "--min-precision",
        help="Only biases whose precision (its lower bound, see --confidence) reaches this (default 0, or 0.85 with "
        "--corpus-dir on the embedded corpus)",
    ),
    confidence: float = typer.Option(
        0.9,
        "--confidence",
        help="--min-precision is checked against the precision's lower confidence bound at this level (0.5: the "
        "precision itself)",
    ),
    check_out_of_sample: bool = typer.Option(
        True,
        "--out-of-sample/--in-sample",
        help="Without a precision floor, keep a bias other than 0 only if it gains F-beta out of sample (chosen on "
        "half of the documents, scored on the other half, over 100 random halvings); --in-sample: the best on the "
        "whole set",
    ),
    report: Optional[Path] = typer.Option(None, "--report", help="JSON file for the table of biases and scores"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
    batch_size: int = typer.Option(64, "--batch-size", help="Documents per batch"),
):
    """Choose the recogniser's outside_bias on a held-out set (the best F-beta over a grid of biases whose precision,
    as a lower confidence bound, reaches --min-precision; one forward pass) and write the pipeline with it."""
    import spacy
    from spacy.tokens import DocBin

    from .. import pipeline  # noqa: F401  (the runtime's registrations)
    from ..evaluation.calibrate import COMPONENT, choose, out_of_sample, save_with_bias, sweep
    from ..files.atomic import atomic_path, check_replaceable, write_text_atomic
    from ..files.problems import check_output, same_file

    if (data is None) == (corpus_dir is None):
        raise InputError(None, None, "give the held-out DATA file or --corpus-dir, not both")
    if data is None:
        data, default_floor = calibration_data(Path(str(corpus_dir)))
    else:
        default_floor = 0.0
    floor = default_floor if min_precision is None else min_precision
    if not (beta > 0 and beta < float("inf")):
        raise InputError(None, None, f"--beta {beta}: give a number above 0")
    if not 0.5 <= confidence < 1:
        raise InputError(None, None, f"--confidence {confidence}: give a number from 0.5 to below 1, e.g. 0.9")
    if not 0 <= floor <= 1:
        raise InputError(None, None, f"--min-precision {floor}: give a number from 0 to 1")
    same_file(output, [model, data])
    check_output(output, is_dir=True)
    check_replaceable(output, is_dir=True)  # before the work, not after it
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        nlp = spacy.load(model)  # as trained, not apps.inference's loader: its CPU precision would be saved too
    except (OSError, ValueError, ImportError) as e:
        raise InputError(model, None, f"cannot load the pipeline: {str(e).splitlines()[0]}") from None
    if COMPONENT not in nlp.pipe_names or not hasattr(nlp.get_pipe(COMPONENT), "decode"):
        raise InputError(model, None, f"has no bio_ner component named {COMPONENT!r}; nothing to calibrate")
    try:
        gold = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    except (OSError, ValueError) as e:
        raise InputError(data, None, f"cannot read it as a .spacy file ({str(e).splitlines()[0]})") from None
    gold_labels = {e.label_ for d in gold for e in d.ents}
    ner: Any = nlp.get_pipe(COMPONENT)
    unknown = sorted(gold_labels - set(ner.labels))
    if unknown or not gold_labels:
        why = f"labels {', '.join(unknown)} are not the model's" if unknown else "has no entities"
        raise InputError(data, None, f"{why}: calibrate on held-out data with the model's labels")
    rows, counts = sweep(nlp, gold, beta=beta, confidence=confidence, batch_size=batch_size)
    chosen, reached = choose(rows, floor)
    in_sample, check = chosen, None
    if check_out_of_sample and not floor and chosen["outside_bias"] != 0.0 and len(gold) >= 2:
        check = out_of_sample(counts, beta)
        if check["gain_mean"] <= 0:
            chosen = next(row for row in rows if row["outside_bias"] == 0.0)
    for row in rows:
        mark = "  <- chosen" if row is chosen else ""
        typer.echo(
            f"outside_bias {row['outside_bias']:+5.2f}  P {row['p']:.4f} (>= {row['p_low']:.4f})  R {row['r']:.4f}  "
            f"F1 {row['f']:.4f}  F{beta:g} {row['f_beta']:.4f}{mark}"
        )
    with atomic_path(output, is_dir=True) as tmp:
        save_with_bias(nlp, chosen["outside_bias"], tmp)
    if report is not None:
        write_text_atomic(
            report,
            json.dumps(
                {
                    "data": str(data),
                    "beta": beta,
                    "min_precision": floor,
                    "confidence": confidence,
                    "min_precision_reached": reached,
                    "chosen": chosen,
                    "in_sample_choice": in_sample,
                    "out_of_sample": check,
                    "sweep": rows,
                },
                indent=1,
            )
            + "\n",
        )
    bound = f"precision >= {floor:g} at its {confidence:.0%} lower confidence bound"
    rule = f"best F{beta:g}" + (f" with {bound}" if floor and reached else "")
    if floor and not reached:
        rule += f"; no bias has {bound}, so the best overall"
    if chosen is not in_sample:
        rule = f"{rule} was {in_sample['outside_bias']:+.2f}, which did not pay out of sample"
    if check is not None:
        typer.echo(
            f"Out of sample ({check['halvings']} random halvings of the documents) the best bias gains {check['gain_mean']:+.4f} "
            f"F{beta:g} over bias 0: "
            + (
                "kept"
                if chosen is in_sample
                else f"{in_sample['outside_bias']:+.2f} is noise here, so bias 0 (--in-sample keeps it)"
            )
        )
    typer.echo(f"Wrote {output} with outside_bias {chosen['outside_bias']:+.2f} ({rule} on {data})")
