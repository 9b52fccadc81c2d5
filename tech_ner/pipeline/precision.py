"""A faster CPU path for the transformer: int8 dynamic quantisation or bf16 autocast.

`apply_precision(nlp, "int8" | "bf16" | "fp32" | "auto")` changes a loaded
pipeline in place, for inference only:

* `int8`: `torch.ao.quantization.quantize_dynamic` swaps every `torch.nn.Linear`
  of the Hugging Face model for a dynamically quantised one (int8 weights,
  activations quantised per batch). The model can no longer be trained, and
  saving it raises a ValueError: its weights are not those of the fp32 model
  any more.
* `bf16`: the Hugging Face model's `forward` runs under
  `torch.autocast("cpu", dtype=torch.bfloat16)`, with the Linear weights stored
  in bfloat16 once (autocast would otherwise cast every weight on every call,
  which costs a third of the gain at our batch shapes); layer norms, softmax
  and embeddings stay float32 as autocast keeps them. The outputs are cast back
  to float32 for thinc (numpy has no bfloat16). Saving raises a ValueError,
  as for int8.
* `fp32`: nothing changes.
* `auto`: see `resolve_precision`.

The `cpu_precision` component stores the choice in a pipeline's config and
applies it when the pipeline is loaded on CPU (its `from_disk` runs after the
transformer's, when it comes later in the pipeline). It never applies itself
while a pipeline is being trained. A package sets it to `best`: the package step
measured the precisions on its build machine and recorded in meta.json
(`cpu_precision.acceptable`) those within F1 tolerance, fastest first; at load
the first one that runs well on *this* CPU is applied (bf16 only with native
bfloat16, int8 only with a quantised engine), since a wheel runs on machines
other than the one that built it. `applied` and `reason` on the component say
what was applied and why.

In `nlp.pipe(n_process=2)` the children do not load the pipeline again: forked
children inherit the parent's transformer as changed, spawned ones unpickle it
(the changed modules pickle), so they run in the precision the parent applied.

This file imports only its sibling runtime files (relatively): the package step ships the runtime
subpackage `tech_ner.pipeline` whole inside the pipeline package (tech_ner/packaging/runtime.py).
"""

import logging
import os
import warnings
from typing import Any, Iterable, List, Optional, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .factories import register_factory_once
from .reduced import ATTR, apply_to

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "int8", "auto")
APPLICABLE: Tuple[str, ...] = ("fp32", "bf16", "int8")
# The component's setting in a package: the first of meta.json's cpu_precision.acceptable that runs well on this CPU
BEST = "best"
COMPONENT_PRECISIONS: Tuple[str, ...] = PRECISIONS + (BEST,)
ENV_VAR = "TECH_NER_PRECISION"
FACTORY_NAME = "cpu_precision"
FACTORY_VERSION = "tech_ner.cpu_precision.v1"
NO_NATIVE_BF16 = (
    "this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag), where bf16 autocast runs "
    "several times slower than fp32"
)
NO_INT8_ENGINE = "torch has no quantised CPU engine here"

logger = logging.getLogger("tech_ner.pipeline.precision")
_WARNED: Set[str] = set()  # warnings given once per process


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays.

    RETURNS (bool): True if /proc/cpuinfo lists avx512_bf16 or amx_bf16.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def int8_available() -> bool:
    """RETURNS (bool): Whether torch has a quantised CPU engine for int8 Linear layers."""
    import torch

    engines = set(torch.backends.quantized.supported_engines)
    return bool(engines & {"x86", "fbgemm", "qnnpack", "onednn"})


def resolve_precision(precision: str, *, device: str = "cpu") -> str:
    """Turn a precision name into the one to apply.

    `auto` is `int8` on a CPU with a quantised engine (x86/fbgemm on
    x86-64, qnnpack on ARM), else `bf16` on a CPU with native bfloat16,
    else `fp32`; on a GPU it is always `fp32` (the config's
    `mixed_precision` is the GPU's fast path).

    precision (str): fp32, bf16, int8 or auto.
    device (str): "cpu" or "cuda" (where the transformer's weights are).
    RETURNS (str): fp32, bf16 or int8.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"[cpu_precision] precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    if device != "cpu":
        return "fp32"
    if int8_available():
        return "int8"
    return "bf16" if native_bf16() else "fp32"


def unfit_here(precision: str) -> Optional[str]:
    """Why `precision` would not pay on this CPU, if it would not.

    precision (str): fp32, bf16 or int8.
    RETURNS (Optional[str]): The reason, or None if it runs well here.
    """
    if precision == "bf16" and not native_bf16():
        return NO_NATIVE_BF16
    if precision == "int8" and not int8_available():
        return NO_INT8_ENGINE
    return None


def acceptable_precisions(record: Any) -> List[str]:
    """The precisions a package may run in, fastest first, from its meta.json `cpu_precision` record.

    record (Any): meta["cpu_precision"]: `acceptable` (written by the package step), else the older record's
        `chosen` then fp32; fp32 alone without either.
    RETURNS (List[str]): Names from fp32, bf16, int8, ending with fp32.
    """
    record = record if isinstance(record, dict) else {}
    if "acceptable" in record:
        acceptable = record["acceptable"]
        if not isinstance(acceptable, list) or not all(p in APPLICABLE for p in acceptable):
            raise ValueError(
                f"[cpu_precision] meta.json cpu_precision.acceptable must be a list of "
                f"{', '.join(APPLICABLE)}, fastest first; got {acceptable!r}: package the pipeline again"
            )
    else:
        acceptable = [record["chosen"]] if record.get("chosen") in APPLICABLE else []
    return [p for p in acceptable if p != "fp32"] + ["fp32"]


def best_here(acceptable: List[str]) -> Tuple[str, str]:
    """The first of `acceptable` that runs well on this CPU.

    acceptable (List[str]): Precisions measured acceptable at packaging, fastest first.
    RETURNS (Tuple[str, str]): The precision and why it was chosen.
    """
    passed_over: List[Tuple[str, str]] = []
    for precision in acceptable:
        why_not = unfit_here(precision)
        if why_not is None:
            reason = (
                "the fastest that runs well on this CPU of those measured acceptable at packaging "
                f"({', '.join(acceptable)})"
            )
            return precision, reason + "".join(f"; not {p}: {w}" for p, w in passed_over)
        passed_over.append((precision, why_not))
    return "fp32", "fp32 ends every list"  # not reached: fp32 always runs


def warn_once(key: str, message: str) -> None:
    """`warnings.warn(message)` the first time `key` comes up in this process."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def find_transformers(nlp: Language, name: Optional[str] = None) -> List[Tuple[str, Any]]:
    """The spacy-transformers components of a pipeline.

    name (Optional[str]): Only this component; None finds every one.
    RETURNS (List[Tuple[str, Any]]): (name, component) pairs.
    """
    from spacy_transformers import Transformer

    if name is not None:
        if name not in nlp.pipe_names:
            raise ValueError(f"[cpu_precision] no component {name!r} in the pipeline {nlp.pipe_names}")
        pipe = nlp.get_pipe(name)
        if not isinstance(pipe, Transformer):
            raise ValueError(
                f"[cpu_precision] component {name!r} is a {type(pipe).__name__}, not a spacy-transformers Transformer"
            )
        return [(name, pipe)]
    return [(n, p) for n, p in nlp.pipeline if isinstance(p, Transformer)]


def transformer_device(nlp: Language) -> str:
    """RETURNS (str): "cpu" or "cuda": where the pipeline's (first) transformer has its weights."""
    for _, pipe in find_transformers(nlp):
        hf_model = pipe.model.layers[0].shims[0]._model
        if hf_model is not None:
            return next(hf_model.parameters()).device.type
    return "cpu"


def apply_precision(nlp: Language, precision: str = "auto", *, transformer: Optional[str] = None) -> str:
    """Make the pipeline's transformer run in `precision`, in place, for inference.

    nlp (Language): A loaded (or initialized) pipeline.
    precision (str): fp32, bf16, int8 or auto (see `resolve_precision`).
    transformer (Optional[str]): The transformer component's name; None applies to every one.
    RETURNS (str): The precision applied (fp32, bf16 or int8).
    """
    applied = resolve_precision(precision, device=transformer_device(nlp))
    if applied == "bf16" and unfit_here("bf16"):
        warn_once(
            "bf16",
            f"[cpu_precision] bf16 as asked, but {NO_NATIVE_BF16}: set {ENV_VAR}=fp32 (or int8) or "
            "leave the pipeline's own setting",
        )
    pipes = find_transformers(nlp, transformer)
    if not pipes and applied != "fp32":
        raise ValueError(f"[cpu_precision] no spacy-transformers component in the pipeline {nlp.pipe_names}")
    for _, pipe in pipes:
        apply_to(pipe, applied)
    return applied


def current_precision(nlp: Language) -> str:
    """RETURNS (str): The precision the pipeline's (first) transformer runs in: fp32, bf16 or int8."""
    for _, pipe in find_transformers(nlp):
        return pipe.model.attrs.get(ATTR, "fp32")
    return "fp32"


class CpuPrecision:
    """Applies a precision to the pipeline's transformer when the pipeline is loaded on CPU.

    Does nothing to documents. Put it after the transformer in the pipeline, so
    its `from_disk` runs once the transformer's weights are in.
    """

    def __init__(
        self,
        nlp: Language,
        name: str = FACTORY_NAME,
        *,
        precision: str = "auto",
        transformer: Optional[str] = "transformer",
    ):
        """Check the settings.

        nlp (Language): The pipeline.
        name (str): The component's name.
        precision (str): fp32, bf16, int8, auto, or best (what a package sets: the fastest of the precisions
            its meta.json records as acceptable that runs well on this CPU); the environment variable
            TECH_NER_PRECISION overrides it for one process.
        transformer (Optional[str]): The transformer component to change; null means every one.
        """
        check_setting(precision, "the component's config (precision)")  # fail early on a bad name
        self.nlp = nlp
        self.name = name
        self.precision = precision
        self.transformer = transformer
        self.applied: Optional[str] = None
        self.reason: Optional[str] = None

    def __call__(self, doc: Doc) -> Doc:
        return doc

    def pipe(self, docs: Iterable[Doc], *, batch_size: int = 128) -> Iterable[Doc]:
        return docs

    def apply(self) -> str:
        """Apply the configured precision now, and set `applied` and `reason`.

        RETURNS (str): The precision applied.
        """
        precision, reason = self.choose()
        self.applied = apply_precision(self.nlp, precision, transformer=self.transformer)
        self.reason = reason
        logger.info("[cpu_precision] %s: %s", self.applied, reason)
        return self.applied

    def choose(self) -> Tuple[str, str]:
        """RETURNS (Tuple[str, str]): The precision to apply here (fp32, bf16, int8 or auto) and why."""
        setting, source = os.environ.get(ENV_VAR), f"the environment ({ENV_VAR})"
        if setting:
            check_setting(setting, source)
        else:
            setting, source = self.precision, "the component's config (precision)"
        device = transformer_device(self.nlp)
        if device != "cpu":  # a CPU path: on a GPU the config's mixed_precision is the fast path
            return "fp32", f"the transformer is on {device}"
        if setting == BEST:
            record = self.nlp.meta.get("cpu_precision")
            if not isinstance(record, dict) or not ({"acceptable", "chosen"} & set(record)):
                return "fp32", "precision best, but meta.json records no measured precisions (cpu_precision.acceptable)"
            return best_here(acceptable_precisions(record))
        if setting == "auto":
            return setting, f"auto, set by {source}: int8 with a quantised engine, else bf16 with native bfloat16"
        return setting, f"set by {source}"

    def to_disk(self, path, *, exclude=tuple()) -> None:
        """Nothing to save: the settings live in the config."""

    def from_disk(self, path, *, exclude=tuple()) -> "CpuPrecision":
        """Called by `spacy.load` after the earlier components are loaded: apply the precision."""
        if self.transformer is None or self.transformer in self.nlp.pipe_names:
            self.apply()
        return self

    def to_bytes(self, *, exclude=tuple()) -> bytes:
        return b""

    def from_bytes(self, bytes_data: bytes, *, exclude=tuple()) -> "CpuPrecision":
        return self.from_disk(None, exclude=exclude)


def check_setting(precision: str, source: str) -> str:
    """RETURNS (str): `precision` if the component accepts it; raises a ValueError naming `source` otherwise."""
    if precision not in COMPONENT_PRECISIONS:
        raise ValueError(
            f"[cpu_precision] {source}: precision must be one of {', '.join(COMPONENT_PRECISIONS)}; got {precision!r}"
        )
    return precision


def make_cpu_precision(nlp: Language, name: str, precision: str, transformer: Optional[str]) -> CpuPrecision:
    """Create the `cpu_precision` component (`nlp.add_pipe("cpu_precision", config={"precision": "int8"})`).

    precision (str): fp32, bf16, int8, auto or best (see `CpuPrecision`).
    transformer (Optional[str]): The transformer component to change; null means every one.
    RETURNS (CpuPrecision): The component.
    """
    return CpuPrecision(nlp, name, precision=precision, transformer=transformer)


# One process may import two copies of this file (the package's and tech_ner's): see factories.py.
register_factory_once(
    FACTORY_NAME,
    FACTORY_VERSION,
    make_cpu_precision,
    assigns=[],
    default_config={"precision": "auto", "transformer": "transformer"},
)
