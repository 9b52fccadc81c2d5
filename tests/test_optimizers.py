"""`tech_ner.Adam.v1`: layer-wise learning-rate decay by parameter name."""

import numpy
import pytest
from thinc.api import registry

import tech_ner.pipeline  # noqa: F401
import tech_ner.training.optimizers  # noqa: F401


def _optimizer(decay):
    return registry.resolve({"o": {"@optimizers": "tech_ner.Adam.v1", "learn_rate": 0.1, "layer_decay": decay}})["o"]


def _step(optimizer, name):
    """One step on a fresh parameter called `name`; RETURNS how far it moved."""
    weights = numpy.zeros(4, dtype="f")
    new, _ = optimizer((7, name), weights.copy(), numpy.ones(4, dtype="f"))
    return float(numpy.abs(new - weights).max())


def test_lower_layers_learn_slower():
    optimizer = _optimizer(0.5)
    names = ["embeddings.word_embeddings.weight"] + [f"encoder.layer.{i}.output.dense.weight" for i in range(3)]
    for name in names:  # the first step sees every layer
        optimizer.layer_scale((7, name))
    assert [optimizer.layer_scale((7, n)) for n in names] == [0.0625, 0.125, 0.25, 0.5]
    assert optimizer.layer_scale((3, "W")) == 1.0  # the head (a thinc parameter)
    steps = {name: _step(_optimizer(0.5), name) for name in ("W", "encoder.layer.0.output.dense.weight")}
    assert steps["W"] > 0 and steps["encoder.layer.0.output.dense.weight"] == pytest.approx(steps["W"] * 0.5)


def test_no_decay_is_plain_adam():
    plain = registry.resolve({"o": {"@optimizers": "Adam.v1", "learn_rate": 0.1}})["o"]
    ours = _optimizer(1.0)
    for name in ("embeddings.x", "encoder.layer.4.y", "W"):
        assert _step(ours, name) == pytest.approx(_step(plain, name))


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match="layer_decay 1.5"):
        _optimizer(1.5)
