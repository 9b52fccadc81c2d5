"""PNG plots of a training run and an evaluation: the training curve and the confusion matrix.

Figures are drawn with matplotlib's object API on the Agg canvas (no display,
no pyplot global state) and saved atomically.
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files.atomic import atomic_path
from ..files.problems import InputError


def read_training_log(path: Union[str, Path]) -> List[Dict]:
    """The evaluation steps of a JSON-lines training log, as written by
    `spacy.ConsoleLogger.v3` with `output_file` (one object per step, with
    step, losses and scores). Blank lines are skipped.

    path (Path): The log file.
    RETURNS (List[Dict]): One dict per evaluation step, in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such training log")
    steps = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(path, n, f"not a JSON line ({e.msg})") from None
            if not isinstance(record, dict) or "step" not in record:
                raise InputError(path, n, "expected a JSON object with a 'step' (spacy.ConsoleLogger.v3 output_file)")
            steps.append(record)
    if not steps:
        raise InputError(path, None, "the training log is empty (no evaluation steps yet)")
    return steps


def _save(fig: Figure, output: Union[str, Path]) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(output)


def plot_training_curve(log_path: Optional[Union[str, Path]], output: Union[str, Path]) -> Optional[str]:
    """Plot loss per component (top) and dev ents_f (bottom) against step.

    ConsoleLogger.v3 writes scores as percentages; a log whose ents_f values
    are all at most 1 is read as fractions and scaled to percent.

    log_path (Optional[Path]): The training log (JSON lines); None skips the plot.
    output (Path): The PNG to write.
    RETURNS (Optional[str]): None when the plot was written, else why it was
        skipped (`file:line: message`); a missing or empty log is not an error.
    """
    if log_path is None:
        return "no training log given"
    try:
        steps = read_training_log(log_path)
    except InputError as e:
        return str(e)
    components = sorted({c for s in steps for c in (s.get("losses") or {})})
    fig = Figure(figsize=(7, 6))
    ax_loss, ax_f = fig.subplots(2, 1, sharex=True)
    for comp in components:
        pts = [(s["step"], s["losses"][comp]) for s in steps if comp in (s.get("losses") or {})]
        ax_loss.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=comp)
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title(f"Training curve ({Path(log_path).name})")
    if components:
        ax_loss.legend()
    else:
        ax_loss.text(0.5, 0.5, "no losses in the log", ha="center", va="center", transform=ax_loss.transAxes)
    found = [(s["step"], (s.get("scores") or {}).get("ents_f")) for s in steps]
    scored = [(st, float(f)) for st, f in found if isinstance(f, (int, float))]
    if scored:
        scale = 100.0 if max(f for _, f in scored) <= 1.0 else 1.0
        ax_f.plot([p[0] for p in scored], [p[1] * scale for p in scored], marker=".", color="tab:green")
    else:
        ax_f.text(0.5, 0.5, "no ents_f scores in the log", ha="center", va="center", transform=ax_f.transAxes)
    ax_f.set_ylabel("dev ents_f (%)")
    ax_f.set_xlabel("step")
    ax_f.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, output)
    return None


def plot_confusion(table: Dict[str, Dict[str, int]], output: Union[str, Path], *, title: str = "") -> Path:
    """Plot a token confusion table (gold rows, predicted columns) with counts
    in the cells, coloured by each count's share of its gold row.

    table (Dict[str, Dict[str, int]]): gold tag -> predicted tag -> count (see `evaluate.confusion_table`).
    output (Path): The PNG to write.
    title (str): The figure title.
    RETURNS (Path): The file written.
    """
    tags = list(table)
    counts = [[table[g].get(p, 0) for p in tags] for g in tags]
    shares = [[c / (sum(row) or 1) for c in row] for row in counts]
    size = max(3.5, 0.7 * len(tags) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    if tags:
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i, row in enumerate(counts):
            for j, c in enumerate(row):
                ax.text(
                    j, i, str(c), ha="center", va="center", fontsize=8, color="white" if shares[i][j] > 0.6 else "black"
                )
        ax.set_xticks(range(len(tags)), labels=tags, rotation=45, ha="right")
        ax.set_yticks(range(len(tags)), labels=tags)
    else:
        ax.text(0.5, 0.5, "no tokens", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title or "Token confusion (colour: share of gold row)")
    fig.tight_layout()
    return _save(fig, output)
