"""Two registered models read by path, as Azure ML's multi-model documentation shows:
`$AZUREML_MODEL_DIR/<name>/<version>/<the registered file or folder>`.

Serve it with `--model labels:1 --model encoder:2`: "labels" registered from a file `labels.json`
({"labels": [...]}), "encoder" version 2 from a folder named `encoder` holding `vocab.json` ({"word": index})
and `weights/scale.txt` (a number). Body: {"data": ["word", ...]}.
"""

import json
import os


def init():
    global labels, vocab, scale
    base = os.getenv("AZUREML_MODEL_DIR")
    with open(os.path.join(base, "labels", "1", "labels.json")) as f:
        labels = json.load(f)["labels"]
    encoder = os.path.join(base, "encoder", "2", "encoder")  # a registered folder keeps its own name
    with open(os.path.join(encoder, "vocab.json")) as f:
        vocab = json.load(f)
    with open(os.path.join(encoder, "weights", "scale.txt")) as f:
        scale = float(f.read())


def run(data):
    words = json.loads(data)
    return [{"word": w, "label": labels[vocab[w] % len(labels)], "score": vocab[w] * scale} for w in words]
