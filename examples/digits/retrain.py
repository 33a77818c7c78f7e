"""Train version 2 of the example model: train.py's classifier, retrained on all 1,797 images.

    python examples/digits/retrain.py [OUTPUT_DIR]     (default: model/v2 beside this file)

train.py holds a quarter of the images back to measure the model; once that number is known, the
second version learns from every image. It is saved as OUTPUT_DIR/model.joblib, the file score.py
loads, so either version serves with the same script (docs/registry.md registers both).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))  # train.py beside it, however this file is run
from train import save  # noqa: E402


def retrain(output_dir: Path) -> Path:
    """Fit the classifier on every image, save it as OUTPUT_DIR/model.joblib (atomically) and return that path."""
    digits = load_digits()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(digits.data, digits.target)
    print(f"digits model: trained on all {len(digits.target)} images")
    return save(model, output_dir)


if __name__ == "__main__":
    print(retrain(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model" / "v2"))
