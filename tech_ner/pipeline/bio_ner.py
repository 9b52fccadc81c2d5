"""The `bio_ner` pipeline component: named entities by token classification.

The head Hugging Face's `AutoModelForTokenClassification` puts on a BERT, as a
trainable spaCy component: each token's vector (from a `TransformerListener`, or
any tok2vec) goes through dropout and one linear layer to a softmax over IOB2 tags
(`O`, `B-<label>`, `I-<label>` for each label), trained with token-level
cross-entropy against the gold entities aligned to the predicted tokens (tokens
whose gold tag cannot be aligned are left out of the loss, not guessed). Predicted
tags are decoded into `doc.ents` by the best valid IOB2 sequence (Viterbi: `I-X`
only after `B-X` or `I-X`), or greedily with seqeval's lenient reading.

Compared with spaCy's transition-based `ner`, it reads every token in one matrix
product (no parser state loop), so a step costs less, and its loss is the one
BERT fine-tuning recipes are tuned for. It scores like `ner` (ents_p/r/f,
ents_per_type) and is a drop-in: `[components.ner] factory = "bio_ner"`.

Entities already on a document (from an `entity_ruler` before it) are kept;
predicted entities overlapping them are left out.

This file imports only its sibling runtime files (relatively): the package step ships the runtime
subpackage `tech_ner.pipeline` whole inside the pipeline package (tech_ner/packaging/runtime.py).
"""

from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import (
    Config,
    Dropout,
    Model,
    Softmax_v2,
    chain,
    concatenate,
    glorot_uniform_init,
    set_dropout_rate,
    with_array,
)
from thinc.types import Floats2d

from .factories import register_factory_once
from .tag_ids import allowed_transitions, biluo_to_tag_ids, decode_viterbi, tag_names, tags_to_spans

FACTORY_NAME = "bio_ner"
FACTORY_VERSION = "tech_ner.bio_ner.v1"
ARCHITECTURE = "tech_ner.TokenClassifier.v1"
FEATURES_ARCHITECTURE = "tech_ner.WithTokenFeatures.v1"
DECODINGS = ("viterbi", "greedy")

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "tech_ner.TokenClassifier.v1"
nO = null
dropout = 0.1

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""


@registry.architectures(ARCHITECTURE)
def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None, dropout: float = 0.1
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors -> dropout -> linear -> softmax over IOB2 tags (logits at prediction time).

    tok2vec (Model[List[Doc], List[Floats2d]]): The token-to-vector subnetwork (a TransformerListener).
    nO (Optional[int]): The number of tags; inferred from the labels at initialization when null.
    dropout (float): Dropout on the token vectors before the linear layer, like BERT's classifier dropout.
        The training's `dropout` setting overrides it while training.
    RETURNS (Model[List[Doc], List[Floats2d]]): One (n_tokens, n_tags) array per document.
    """
    width = tok2vec.get_dim("nO") if tok2vec.has_dim("nO") else None
    output_layer = Softmax_v2(nO, width, init_W=glorot_uniform_init, normalize_outputs=False)
    # thinc's combinator types cannot say that Dropout passes its input type through
    model: Model = chain(tok2vec, with_array(chain(Dropout(dropout), output_layer)))  # type: ignore[arg-type]
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    return model


@registry.architectures(FEATURES_ARCHITECTURE)
def build_with_token_features(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int = 64,
    attrs: Sequence[str] = ("SHAPE", "PREFIX", "SUFFIX"),
    rows: Sequence[int] = (1000, 2500, 2500),
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors with the spelling an uncased backbone cannot see, side by side.

    An uncased WordPiece vocabulary reads "Java", "JAVA" and "java" alike, so "an apple and some java beans"
    looks like "Apple" and "Java" to it. This puts spaCy's hash embeddings of each token's lexical
    attributes (SHAPE: case, digits and punctuation, like "Xxxxx" or "xxxx.xx"; PREFIX; SUFFIX) next to
    `tok2vec`'s vectors, trained with the head.

    tok2vec (Model[List[Doc], List[Floats2d]]): The token vectors to extend (a TransformerListener).
    width (int): Width of the feature vectors added to each token.
    attrs (Sequence[str]): Token attributes to embed (spaCy attribute names, as spacy.MultiHashEmbed.v2 takes).
    rows (Sequence[int]): Hash table rows for each attribute.
    RETURNS (Model[List[Doc], List[Floats2d]]): tok2vec's vectors with `width` more columns.
    """
    if len(attrs) != len(rows) or not attrs:
        raise ValueError(
            f"[bio_ner] {FEATURES_ARCHITECTURE}: give one row count per attribute "
            f"(attrs {list(attrs)}, rows {list(rows)})"
        )
    make_embed = registry.architectures.get("spacy.MultiHashEmbed.v2")
    features = make_embed(width=width, attrs=list(attrs), rows=list(rows), include_static_vectors=False)
    model: Model = concatenate(tok2vec, features)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("features", features)
    return model


class BioNER(TrainablePipe):
    """Named entities by token classification over IOB2 tags (see the module docstring)."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "ner",
        *,
        decoding: str = "viterbi",
        normalize: bool = True,
        learn_rate_scale: float = 1.0,
        outside_bias: float = 0.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        """
        decoding (str): "viterbi" (the best valid IOB2 sequence) or "greedy" (each token's best tag).
        normalize (bool): Average the loss over the batch's tokens (True, as Hugging Face does) or sum it.
        learn_rate_scale (float): The head's learning rate as a multiple of the optimizer's (which the
            transformer uses): a freshly initialised head often learns best faster than the pretrained body.
        outside_bias (float): Added to the `O` tag's log-probability before decoding: above 0 a token needs
            more evidence to be tagged (fewer, surer entities: precision up, recall down), below 0 less.
            Chosen after training on a held-out set by `tech-ner calibrate`; 0 leaves the model as trained.
        scorer (Optional[Callable]): Entity scorer; spaCy's NER scorer by default.
        """
        if decoding not in DECODINGS:
            raise ValueError(f"[bio_ner] decoding {decoding!r}: expected one of {', '.join(DECODINGS)}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self._rehearsal_model = None
        if not learn_rate_scale > 0:
            raise ValueError(f"[bio_ner] learn_rate_scale {learn_rate_scale!r}: expected a number above 0")
        if not numpy.isfinite(outside_bias):
            raise ValueError(f"[bio_ner] outside_bias {outside_bias!r}: expected a finite number")
        self.cfg: Dict = {
            "labels": [],
            "decoding": decoding,
            "normalize": normalize,
            "outside_bias": float(outside_bias),
        }
        self.learn_rate_scale = float(learn_rate_scale)
        self.scorer = scorer
        self._decode_cache: Optional[Tuple] = None

    @property
    def labels(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str, ...]): The entity labels."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tags(self) -> List[str]:
        """RETURNS (List[str]): The IOB2 tags the model predicts, in output order."""
        return tag_names(self.labels)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"[bio_ner] labels are strings, got {label!r}")
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self._decode_cache = None
        return 1

    def _constraints(self) -> Tuple[numpy.ndarray, numpy.ndarray]:
        if self._decode_cache is None or self._decode_cache[0] != self.labels:
            self._decode_cache = (self.labels, *allowed_transitions(self.labels))
        return self._decode_cache[1], self._decode_cache[2]

    def predict(self, docs: Iterable[Doc]) -> List[numpy.ndarray]:
        """RETURNS (List[numpy.ndarray]): One array of IOB2 tag indices per document."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((len(doc),), dtype="int64") for doc in docs]
        return [self.decode(self.model.ops.to_numpy(doc_scores)) for doc_scores in self.model.predict(docs)]

    def decode(self, scores: numpy.ndarray, outside_bias: Optional[float] = None) -> numpy.ndarray:
        """One document's tag indices from its (n_tokens, n_tags) logits, by the component's decoding.

        outside_bias (Optional[float]): Added to the `O` logit (the same as to its log-probability: a token's
            normalisation is shared by all its tags); the component's `outside_bias` setting when None.
        """
        bias = self.cfg.get("outside_bias", 0.0) if outside_bias is None else outside_bias
        if bias and len(scores):
            scores = scores.astype("float64")  # a copy: the caller's array is left alone
            scores[:, 0] += bias
        if self.cfg["decoding"] == "viterbi":
            return decode_viterbi(scores, *self._constraints())
        return scores.argmax(axis=1)

    def set_annotations(self, docs: Iterable[Doc], tag_ids: List[numpy.ndarray]) -> None:
        """Set `doc.ents` from the predicted tags; entities already set are kept, overlapping predictions dropped."""
        labels = self.labels
        for doc, ids in zip(docs, tag_ids):
            preset = list(doc.ents)
            taken = numpy.zeros(len(doc), dtype=bool)
            for ent in preset:
                taken[ent.start : ent.end] = True
            spans = [Span(doc, s, e, label=label) for s, e, label in tags_to_spans(ids, labels) if not taken[s:e].any()]
            doc.set_ents(preset + spans, default="outside")

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]) -> Tuple[float, List[Floats2d]]:
        """Token cross-entropy of the softmax `scores` against the aligned gold tags; unaligned tokens masked out.

        RETURNS (Tuple[float, List[Floats2d]]): The loss and its gradient with respect to `scores`.
        """
        validate_examples(examples, "BioNER.get_loss")
        ops = self.model.ops
        index = {tag: i for i, tag in enumerate(self.tags)}
        golds = [biluo_to_tag_ids(eg.get_aligned_ner(), index) for eg in examples]
        n_known = sum(sum(known) for _, known in golds)
        scale = 1.0 / max(n_known, 1) if self.cfg["normalize"] else 1.0
        loss = 0.0
        d_scores = []
        for (ids, known), probs in zip(golds, scores):
            target: Any = numpy.zeros(probs.shape, dtype="float32")
            rows = numpy.arange(len(ids))
            target[rows, ids] = 1.0
            mask: Any = numpy.asarray(known, dtype="float32")[:, None]
            target, mask = ops.asarray2f(target), ops.asarray2f(mask)
            d_scores.append((probs - target) * mask * scale)
            gold_probs = (probs * target).sum(axis=1)
            loss += float(-(ops.xp.log(ops.xp.maximum(gold_probs, 1e-12)) * mask[:, 0]).sum()) * scale
        if numpy.isnan(loss):
            raise ValueError(f"[bio_ner] the loss of {self.name!r} is NaN: lower the learning rate or clip gradients")
        return loss, d_scores

    def update(
        self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None, losses: Optional[Dict[str, float]] = None
    ) -> Dict[str, float]:
        """Learn from a batch of examples; RETURNS the losses, `losses[name]` increased by this batch's."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BioNER.update")
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update(docs)
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd not in (None, False):
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def finish_update(self, sgd) -> None:
        """Update the head's weights with `sgd`, its learning rate scaled by `learn_rate_scale`."""
        scaled: Any = sgd if self.learn_rate_scale == 1.0 else _ScaledOptimizer(sgd, self.learn_rate_scale)
        self.model.finish_update(scaled)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Take the labels (given, or every entity label in the training examples) and size the model."""
        validate_get_examples(get_examples, "BioNER.initialize")
        if labels is None:
            seen: Dict[str, None] = {}
            for example in get_examples():
                for ent in example.reference.ents:
                    seen.setdefault(ent.label_, None)
            labels = sorted(seen)
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"[bio_ner] {self.name!r}: the training examples have no entities, so there are no "
                f"labels to learn: check the corpus (or give labels in [initialize.components])"
            )
        doc_sample = [eg.predicted for eg in islice(get_examples(), 10)]
        n_tags = len(self.tags)
        label_sample = [self.model.ops.alloc2f(len(doc), n_tags) for doc in doc_sample]
        self.model.initialize(X=doc_sample, Y=label_sample)


class _ScaledOptimizer:
    """An optimizer as `model.finish_update` calls it, every step's learning rate scaled by `scale`."""

    def __init__(self, sgd, scale: float) -> None:
        self.sgd = sgd
        self.scale = scale

    def __call__(self, key, weights, gradient, *, lr_scale: float = 1.0):
        return self.sgd(key, weights, gradient, lr_scale=lr_scale * self.scale)

    def __getattr__(self, name):
        return getattr(self.sgd, name)


def make_bio_ner(
    nlp: Language,
    name: str,
    model: Model,
    decoding: str,
    normalize: bool,
    learn_rate_scale: float,
    outside_bias: float,
    scorer: Optional[Callable],
) -> BioNER:
    """Create the `bio_ner` component (`nlp.add_pipe("bio_ner", name="ner")`); see `BioNER`."""
    return BioNER(
        nlp.vocab,
        model,
        name,
        decoding=decoding,
        normalize=normalize,
        learn_rate_scale=learn_rate_scale,
        outside_bias=outside_bias,
        scorer=scorer,
    )


register_factory_once(
    FACTORY_NAME,
    FACTORY_VERSION,
    make_bio_ner,
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": Config().from_str(DEFAULT_MODEL_CONFIG)["model"],
        "decoding": "viterbi",
        "normalize": True,
        "learn_rate_scale": 1.0,
        "outside_bias": 0.0,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
