"""Training through spaCy's config system, with the project's functions registered."""
import os
from pathlib import Path
from typing import Dict, Optional

from . import registrations  # noqa: F401  (registers the config functions)
from .backbone import resolve_backbone
from .problems import InputError


def train(config: Path, output: Path, *, overrides: Optional[Dict[str, object]] = None, gpu_id: int = -1) -> Path:
    """Train a pipeline from a config; model-best and model-last land in `output`.

    overrides (Dict[str, object]): dotted config overrides, e.g. {"paths.train": "corpus/spacy/train.spacy"}.
    gpu_id (int): -1 for CPU, else the GPU to train on.
    RETURNS (Path): the output folder.
    """
    from spacy.cli.train import train as spacy_train
    from spacy.util import load_config

    overrides = dict(overrides or {})
    env_overrides = os.environ.get("SPACY_CONFIG_OVERRIDES")
    if env_overrides:
        from spacy.cli._util import parse_config_overrides

        overrides.update(parse_config_overrides(env_overrides.split()))
    cfg = load_config(config, overrides=overrides, interpolate=False)
    backbone = cfg["paths"].get("backbone")
    if backbone:
        resolve_backbone(str(backbone), strict=True)  # one clear line before any work
    for key in ("paths.train", "paths.dev"):
        value = overrides.get(key, cfg["paths"].get(key.split(".")[1]))
        if value in (None, "null") or not Path(str(value)).exists():
            raise InputError(None, None, f"--{key} {value}: no such corpus; run `spacy project run convert` first")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    log = overrides.get("paths.log", cfg["paths"].get("log"))
    if log not in (None, "null") and Path(str(log)).exists():
        Path(str(log)).unlink()  # our output from an earlier run; spaCy would refuse to write it
    spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    return output
