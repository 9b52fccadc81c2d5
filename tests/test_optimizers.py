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


@pytest.mark.parametrize(
    "options",
    [
        {"L2": 0.01, "L2_is_weight_decay": True, "grad_clip": 1.0},
        {"L2": 0.01, "L2_is_weight_decay": False, "grad_clip": 0.0},
        {"L2": 0.0, "grad_clip": 0.5, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
    ],
)
def test_adam_and_averages_are_thincs(options):
    """The Adam step done in torch and the moving average kept in one pass are thinc's Adam.v1 (use_averages), step
    by step: weight decay or L2, gradient clipping (its gradients are large enough to clip), other betas."""
    options = {"learn_rate": 0.1, "use_averages": True, **options}
    plain = registry.resolve({"o": {"@optimizers": "Adam.v1", **options}})["o"]
    ours = registry.resolve({"o": {"@optimizers": "tech_ner.Adam.v1", **options}})["o"]
    rng = numpy.random.default_rng(0)
    start = rng.random((3, 4), dtype="f")
    weights = {plain: start.copy(), ours: start.copy()}
    for _ in range(30):
        gradient = (rng.random((3, 4), dtype="f") - 0.5) * 2
        for optimizer in (plain, ours):
            weights[optimizer], left = optimizer((1, "W"), weights[optimizer], gradient.copy())
            assert not left.any()
    numpy.testing.assert_allclose(weights[ours], weights[plain], rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(ours.averages[(1, "W")], plain.averages[(1, "W")], rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(weights[ours], start)


class _Pipe:
    def __init__(self, model):
        self.model = model


def test_averages_reach_a_pytorch_model():
    """Within `use_params(optimizer.averages)` a PyTorch model holds the averages, its parameters without a gradient
    (BERT's pooler) as they are, and its own weights again after; thinc's shim alone leaves it untouched."""
    torch = pytest.importorskip("torch")
    from thinc.api import PyTorchWrapper

    from tech_ner.training.optimizers import average_backbone

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    torch.manual_seed(0)
    model = PyTorchWrapper(Net())
    optimizer = registry.resolve({"o": {"@optimizers": "tech_ner.Adam.v1", "learn_rate": 0.5}})["o"]
    X = numpy.ones((2, 4), dtype="f")
    for _ in range(5):
        Y, backprop = model.begin_update(X)
        backprop(numpy.ones_like(Y))
        model.finish_update(optimizer)
    net = model.shims[0]._model
    trained = net.used.weight.detach().clone()
    unused = net.unused.weight.detach().clone()
    average = optimizer.averages[(model.shims[0].id, "used.weight")]
    assert not numpy.allclose(average, trained.numpy())
    with model.use_params(optimizer.averages):
        assert torch.equal(net.used.weight, trained)  # thinc's shim reads other keys
    average_backbone(type("NLP", (), {"pipeline": [("transformer", _Pipe(model)), ("rules", object())]})())
    with model.use_params(optimizer.averages):
        numpy.testing.assert_allclose(net.used.weight.detach().numpy(), average)
        assert torch.equal(net.unused.weight, unused)
    assert torch.equal(net.used.weight, trained)
