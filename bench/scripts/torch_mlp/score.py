"""Benchmark entry script for bench/gpu.py: a PyTorch MLP (20 features, 3 hidden layers of 4096, 10 classes).

init() puts the model on the GPU when the worker has one (`--devices` gives each worker its own, as device 0),
else on the CPU: the same script measures both. run() parses the raw body itself, as published Azure ML
scripts do; run_batch() stacks the rows of every waiting request into one tensor, one forward pass for all.
Weights come from a fixed seed, so no model file has to be shipped.
"""

import json
import os

import torch

model: torch.nn.Module | None = None
device = torch.device("cpu")


def init() -> None:
    global model, device
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "4")))  # per worker: 2 workers share the cores
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width = 4096
    layers = [torch.nn.Linear(20, width), torch.nn.ReLU()]
    for _ in range(2):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).eval().to(device)


def _predict(rows: list[list[float]]) -> list[int]:
    assert model is not None, "init() has not run"
    with torch.inference_mode():
        features = torch.tensor(rows, dtype=torch.float32, device=device)
        classes: list[int] = model(features).argmax(dim=1).tolist()
    return classes


def run(raw: str) -> list[int]:
    return _predict(json.loads(raw)["data"])


def run_batch(inputs: list[str]) -> list[list[int]]:
    requests = [json.loads(raw)["data"] for raw in inputs]
    classes = _predict([row for rows in requests for row in rows])
    answers, start = [], 0
    for rows in requests:
        answers.append(classes[start : start + len(rows)])
        start += len(rows)
    return answers
