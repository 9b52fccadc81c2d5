"""`tech_ner.Adam.v1`: thinc's Adam.v1, faster on CPU, with layer-wise learning-rate decay for a transformer backbone and
moving averages that reach it.

The step is thinc's arithmetic done by torch's fused Adam on the arrays' memory (tests/test_optimizers.py holds the two
equal), and the moving average of `use_averages` takes one pass, not three. thinc's PyTorch shim never read the
averages, so `use_averages` reached only the thinc layers; `average_backbone` (`[training] before_update`) makes it.

Some fine-tuning recipes (ELECTRA's, for one) give a BERT's lower layers smaller steps than its
upper ones: layer `i` (counted from 0) of `L` learns at `layer_decay ** (L - i)` times the rate,
the embeddings at `layer_decay ** (L + 1)`, and the randomly initialised head at the full rate.
With `layer_decay = 1.0` this is exactly thinc's `Adam.v1`.

The optimizer sees parameters only by name: a PyTorch parameter named like
`...layer.3...` (BERT, RoBERTa, DistilBERT, ...) is layer 3, one with `embed` in its name is an
embedding, anything else (the head, thinc layers) gets the full rate. `L` is one more than the
highest layer index seen so far; the first update already runs every layer, and falls in the warm-up where the
rate is near zero, so the scales are right from the second step on.
"""

import contextlib
import functools
import re
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy
import torch
from spacy.util import registry
from thinc.api import NumpyOps, Optimizer, PyTorchShim, xp2torch
from thinc.optimizers import ADAM_DEFAULTS
from thinc.types import FloatsXd

NUMPY_OPS = NumpyOps()
LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


class LayerDecayAdam(Optimizer):
    """Adam whose step for a transformer parameter is scaled by `layer_decay` per layer below the top."""

    def __init__(self, *args, layer_decay: float = 1.0, **kwargs) -> None:
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"[training.optimizer] layer_decay {layer_decay!r}: expected a number in (0, 1]")
        super().__init__(*args, **kwargs)
        self.layer_decay = layer_decay
        self.top_layer = -1
        self._depths: Dict[Tuple, int] = {}  # key -> layer index (-1: embeddings); keys not here: full rate

    def layer_scale(self, key: Tuple) -> float:
        """The multiple of the learning rate that the parameter `key` ((node id, name)) gets."""
        if self.layer_decay == 1.0:
            return 1.0
        depth = self._depths.get(key)
        if depth is None:
            name = key[1] if isinstance(key, tuple) and len(key) > 1 and isinstance(key[1], str) else ""
            match = LAYER.search(name)
            if match:
                depth = int(match.group(1))
                self.top_layer = max(self.top_layer, depth)
            elif "embed" in name:
                depth = -1
            else:
                return 1.0
            self._depths[key] = depth
        return self.layer_decay ** (self.top_layer + 1 - depth)

    def __call__(self, key: Tuple, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        lr_scale *= self.layer_scale(key)
        torch_can = _in_memory(weights) and _in_memory(gradient) and not self.use_radam and self.b1 > 0 and self.b2 > 0
        if not torch_can or len(gradient) < 1:
            return super().__call__(key, weights, gradient, lr_scale=lr_scale)
        self._adam_in_torch(key, weights, gradient, lr_scale)
        if self.averages is not None:
            if key not in self.averages:
                self.averages[key] = NUMPY_OPS.alloc(weights.shape, dtype="float32")
            update_average(self.averages[key], weights, self.nr_update[key])
        return weights, gradient

    def _adam_in_torch(self, key: Tuple, weights: Any, gradient: Any, lr_scale: float) -> None:
        """thinc's Adam step (`Optimizer.__call__` with `_adam`: L2, gradient clipping, the moments, weight decay) in
        place on the arrays' memory, with torch's fused Adam: with the moving average, 0.58 times the time of thinc's
        Adam.v1 without one over the MiniLM backbone's 22.6M parameters on 2 cores, 70 ms a step against 120
        (benchmarks/optimizer_speed.py). No buffer is made per step (a new one each step grew the heap by about 20 MB
        a step)."""
        self.nr_update[key] += 1
        t = self.nr_update[key]
        w, g = torch.from_numpy(weights).view(-1), torch.from_numpy(gradient).view(-1)
        if key not in self.mom1:
            self.mom1[key] = NUMPY_OPS.alloc1f(weights.size)
            self.mom2[key] = NUMPY_OPS.alloc1f(weights.size)
        m, v = torch.from_numpy(self.mom1[key]), torch.from_numpy(self.mom2[key])
        if self.L2 != 0 and not self.L2_is_weight_decay:
            g.add_(w, alpha=self.L2)
        if self.grad_clip:
            norm = float(torch.linalg.vector_norm(g))
            if norm >= self.grad_clip:
                g.mul_(self.grad_clip / norm)
        # torch's fused Adam, one pass. Its step is lr' / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps'), thinc's
        # lr * sqrt(1 - B2^t) / (1 - B1^t) * m / (sqrt(v) + eps) with the betas in float32 for the moments (b1, b2, as
        # thinc's loop has them) and as given for the bias correction (B1, B2): lr' and eps' make them equal.
        b1, b2 = float(numpy.float32(self.b1)), float(numpy.float32(self.b2))
        thincs = self.learn_rate * lr_scale * (1.0 - self.b2**t) ** 0.5 / (1.0 - self.b1**t)
        torch._fused_adam_(
            [w],
            [g],
            [m],
            [v],
            [],
            [torch.tensor(float(t))],  # the step, counted from 1 (the fused kernel does not count it)
            lr=thincs * (1.0 - b1**t) / (1.0 - b2**t) ** 0.5,
            beta1=b1,
            beta2=b2,
            weight_decay=0.0,
            eps=self.eps / (1.0 - b2**t) ** 0.5,
            amsgrad=False,
            maximize=False,
        )
        g.zero_()
        if self.L2 != 0 and self.L2_is_weight_decay:
            w.mul_(1.0 - lr_scale * self.learn_rate * self.L2)


def _in_memory(array: FloatsXd) -> bool:
    """Whether torch can work on `array` in place: a contiguous float32 numpy array (not cupy's)."""
    return isinstance(array, numpy.ndarray) and array.dtype == numpy.float32 and array.flags.c_contiguous


def update_average(average: Any, weights: Any, t: int, max_decay: float = 0.9999) -> None:
    """thinc's `Ops.update_averages` (the moving average that `use_averages` keeps, after update `t`) in one pass, by
    torch's lerp on the arrays' memory, where thinc's numpy takes three (benchmarks/optimizer_speed.py times both)."""
    decay = min((1.0 + t) / (10.0 + t), max_decay)
    torch.from_numpy(average).lerp_(torch.from_numpy(weights), 1.0 - decay)


@registry.optimizers("tech_ner.Adam.v1")
def configure_layer_decay_adam(
    learn_rate=ADAM_DEFAULTS["learn_rate"],
    *,
    L2=ADAM_DEFAULTS["L2"],
    beta1=ADAM_DEFAULTS["beta1"],
    beta2=ADAM_DEFAULTS["beta2"],
    eps=ADAM_DEFAULTS["eps"],
    grad_clip=ADAM_DEFAULTS["grad_clip"],
    L2_is_weight_decay: bool = bool(ADAM_DEFAULTS["L2_is_weight_decay"]),
    use_averages: bool = True,
    layer_decay: float = 1.0,
) -> LayerDecayAdam:
    """thinc's Adam.v1 with `layer_decay`: each transformer layer below the top learns `layer_decay` times slower
    than the one above it (1.0: no decay, plain Adam). The other arguments are Adam.v1's."""
    return LayerDecayAdam(
        learn_rate,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
        layer_decay=layer_decay,
    )


@contextlib.contextmanager
def _use_averaged_backbone(shim: PyTorchShim, params: Dict) -> Iterator[None]:
    """PyTorchShim.use_params reading the keys the optimizer writes: `(shim.id, parameter name)`. thinc's own reads
    `"pytorch_<id>_<name>"` keys, which no optimizer writes, so `use_averages` never reached a PyTorch model; and it
    loads them strictly, which fails on a parameter that never had a gradient (BERT's pooler)."""
    averaged = [(p, params[(shim.id, name)]) for name, p in shim._model.named_parameters() if (shim.id, name) in params]
    backup = [p.data.clone() for p, _ in averaged]
    with torch.no_grad():
        for p, average in averaged:
            p.data.copy_(xp2torch(average, device=p.device).reshape(p.shape))
    try:
        yield
    finally:
        with torch.no_grad():
            for (p, _), saved in zip(averaged, backup):
                p.data.copy_(saved)


def average_backbone(nlp: Any, info: Optional[Dict] = None) -> None:
    """Make the optimizer's averages (`use_averages = true`) reach the PyTorch models of `nlp`'s pipes, as they
    reach its thinc layers: spaCy evaluates and saves `model-best` within `nlp.use_params(optimizer.averages)`.
    Idempotent; called before every update as `[training] before_update`."""
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if model is None:
            continue
        for node in model.walk():
            for shim in node.shims:
                if isinstance(shim, PyTorchShim) and "use_params" not in vars(shim):
                    setattr(shim, "use_params", functools.partial(_use_averaged_backbone, shim))


@registry.callbacks("tech_ner.average_backbone.v1")
def configure_average_backbone() -> Callable[[Any, Dict], None]:
    """`[training] before_update`: the optimizer's parameter averages (`use_averages = true`) apply to the backbone
    too, when spaCy evaluates and saves the best model, not only to the thinc layers (tech_ner/training/optimizers.py,
    average_backbone)."""
    return average_backbone
