"""A transformer made to run in bf16 or int8 on CPU, in place: what `precision.apply_precision` does to each
spacy-transformers component (and marks on its thinc model, `ATTR`)."""

import os
import warnings
from typing import Any

ATTR = "tech_ner_precision"  # on the transformer's thinc model: the precision applied

# torch's bf16 matrix products on CPU go through ideep and oneDNN, and both keep what they made for every new shape
# (ideep's LRU cache and oneDNN's primitive cache, 1,024 entries each by default); every batch of texts has a new
# shape (its number of 128-piece windows), so RSS grew with every batch: about 25 MB a batch over a 10 MB document,
# and from 649 to 866 MB between batches over 14,000 documents of 300 words. A few entries hold one batch's shapes.
# Each library reads its variable once, when it first runs; a value the user set (either name) is kept.
CACHE_CAPACITY = "16"
CACHE_VARS = (
    ("LRU_CACHE_CAPACITY",),  # ideep (torch's mkldnn bridge)
    ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"),  # oneDNN, and its older name
)


def bound_kernel_caches() -> None:
    """Cap the per-shape caches of ideep and oneDNN at `CACHE_CAPACITY` entries, in this process and the ones it
    starts, unless the user set them; no effect once a bf16 product has run in this process."""
    for names in CACHE_VARS:
        if not any(name in os.environ for name in names):
            os.environ[names[0]] = CACHE_CAPACITY


class _AutocastForward:
    """The HF model's forward under CPU autocast, with float32 outputs.

    Set as an instance attribute (`hf_model.forward`), which `nn.Module.__call__`
    uses before the class's method. A module-level class, not a closure, so the
    model still pickles.
    """

    def __init__(self, module: Any, dtype: Any):
        self.module = module
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        import torch

        with torch.autocast("cpu", dtype=self.dtype):
            output = type(self.module).forward(self.module, *args, **kwargs)
        return _to_float32(output)


def _to_float32(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    if isinstance(value, tuple) and not hasattr(value, "keys"):
        return type(value)(_to_float32(v) for v in value)
    if hasattr(value, "keys"):  # transformers' ModelOutput (an OrderedDict that syncs attributes)
        for key in list(value.keys()):
            value[key] = _to_float32(value[key])
        return value
    return value


class _RefuseToSave:
    """Stands in for the shim's `to_bytes` once its weights are no longer the trained float32 ones."""

    def __init__(self, precision: str):
        self.precision = precision

    def __call__(self, *args, **kwargs):
        raise ValueError(
            f"[cpu_precision] this transformer runs in {self.precision} for inference and cannot be saved: its "
            "weights are no longer the trained float32 ones. Load the pipeline with precision fp32 to save it, e.g. "
            "spacy.load(path, config={'components': {'cpu_precision': {'precision': 'fp32'}}})."
        )


def apply_to(pipe: Any, precision: str) -> str:
    """Run one spacy-transformers component in `precision` (fp32, bf16 or int8). RETURNS (str): The precision."""
    import torch

    model = pipe.model
    shim = model.layers[0].shims[0]
    hf_model = shim._model
    if hf_model is None:
        raise ValueError("[cpu_precision] the transformer has no weights yet: load or initialize the pipeline first")
    done = model.attrs.get(ATTR, "fp32")
    if done == precision:
        return precision
    if done != "fp32":
        raise ValueError(
            f"[cpu_precision] the transformer already runs in {done}; load the pipeline again to use {precision}"
        )
    device = next(hf_model.parameters()).device.type
    if precision != "fp32" and device != "cpu":
        raise ValueError(f"[cpu_precision] {precision} is a CPU path, but the transformer is on {device}")
    if precision == "int8":
        with warnings.catch_warnings():
            # torch marks its eager-mode quantisation API as deprecated in favour of torchao (not a dependency here)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.ao.quantization.quantize_dynamic(hf_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    elif precision == "bf16":
        bound_kernel_caches()
        for module in hf_model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
        hf_model.forward = _AutocastForward(hf_model, torch.bfloat16)
    if precision != "fp32":
        shim.to_bytes = _RefuseToSave(precision)  # instance attribute: the model's to_disk/to_bytes go through it
    model.attrs[ATTR] = precision
    return precision
