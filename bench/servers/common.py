"""The model call that every bare server makes: orjson in, predict, orjson out.

The model is built at import, in each worker, by the benchmark entry script's own ``init()``
(path in ``BENCH_ENTRY_SCRIPT``), so bare servers and entry-script servers score with the same
model and the same input.
"""

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

DEFAULT_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sklearn_lr" / "score.py"
JSON_HEADERS = [("content-type", "application/json")]
TEXT_HEADERS = [("content-type", "text/plain; charset=utf-8")]


def _load_predict() -> Callable[[Any], Any]:
    path = Path(os.environ.get("BENCH_ENTRY_SCRIPT", DEFAULT_SCRIPT))
    spec = importlib.util.spec_from_file_location("bench_entry_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    predict: Callable[[Any], Any] = module.clf.predict
    return predict


_predict = _load_predict()


def score(body: bytes) -> bytes:
    """Score a ``{"data": [[...], ...]}`` body; return the predictions as a JSON list."""
    rows = np.asarray(orjson.loads(body)["data"])
    return orjson.dumps(_predict(rows), option=orjson.OPT_SERIALIZE_NUMPY)
