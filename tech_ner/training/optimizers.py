"""`tech_ner.Adam.v1`: thinc's Adam with layer-wise learning-rate decay for a transformer backbone.

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

import re
from typing import Dict, Tuple

from thinc.api import Optimizer, registry
from thinc.optimizers import ADAM_DEFAULTS
from thinc.types import FloatsXd

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
        return super().__call__(key, weights, gradient, lr_scale=lr_scale * self.layer_scale(key))


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
