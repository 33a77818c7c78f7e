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


def _load_script() -> Any:
    path = Path(os.environ.get("BENCH_ENTRY_SCRIPT", DEFAULT_SCRIPT))
    spec = importlib.util.spec_from_file_location("bench_entry_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


_script = _load_script()
_predict: Callable[[Any], Any] = _script.clf.predict
_run: Callable[[str], Any] = _script.run


def score(body: bytes) -> bytes:
    """Score a ``{"data": [[...], ...]}`` body; return the predictions as a JSON list."""
    rows = np.asarray(orjson.loads(body)["data"])
    return orjson.dumps(_predict(rows), option=orjson.OPT_SERIALIZE_NUMPY)


def score_with_run(body: bytes) -> bytes:
    """Score through the entry script's own ``run()`` (its json.loads included), as any host must."""
    return orjson.dumps(_run(body.decode()), option=orjson.OPT_SERIALIZE_NUMPY)
