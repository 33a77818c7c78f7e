"""Train the example model: a scikit-learn classifier for the 8x8 digits images that scikit-learn ships.

Run it directly (`python train.py [OUTPUT_DIR]`), or let score.py's init() call it on first use.
The model is built here rather than committed, so it always matches the installed scikit-learn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_FILE = "model.joblib"


def train(output_dir: Path) -> Path:
    """Fit the classifier, save it as OUTPUT_DIR/model.joblib (atomically) and return that path."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    print(f"digits model: test accuracy {model.score(x_test, y_test):.3f}")
    return save(model, output_dir)


def save(model: object, output_dir: Path) -> Path:
    """Save MODEL as OUTPUT_DIR/model.joblib, atomically, and return that path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / MODEL_FILE
    partial = target.with_suffix(".partial")
    joblib.dump(model, partial)
    partial.replace(target)  # a crash mid-write never leaves a half model behind
    return target


if __name__ == "__main__":
    print(train(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "model"))
