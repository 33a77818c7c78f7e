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
# The scikit-learn scripts' model, called directly by `score`; a script without one (bench/gpu.py's torch MLP) is
# served through its own run() only (`score_with_run`).
_predict: Callable[[Any], Any] | None = getattr(getattr(_script, "clf", None), "predict", None)
_run: Callable[[str], Any] = _script.run


def score(body: bytes) -> bytes:
    """Score a ``{"data": [[...], ...]}`` body; return the predictions as a JSON list."""
    assert _predict is not None, "this entry script has no clf: serve it with run_app"
    rows = np.asarray(orjson.loads(body)["data"])
    return orjson.dumps(_predict(rows), option=orjson.OPT_SERIALIZE_NUMPY)


def score_with_run(body: bytes) -> bytes:
    """Score through the entry script's own ``run()`` (its json.loads included), as any host must."""
    return orjson.dumps(_run(body.decode()), option=orjson.OPT_SERIALIZE_NUMPY)
