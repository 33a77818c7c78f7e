"""init() appends to its model file and writes a new file beside it, as a script that trains on a miss might.

run() answers what init() found before it wrote: every file under AZUREML_MODEL_DIR, and the model file's size.
"""

import os
from pathlib import Path

found = {}


def init():
    model_dir = Path(os.environ["AZUREML_MODEL_DIR"])
    model = next(model_dir.rglob("model.pkl"))  # at the top, or inside a registered folder
    files = sorted(path.relative_to(model_dir).as_posix() for path in model_dir.rglob("*") if path.is_file())
    found.update(files=files, size=model.stat().st_size)
    try:
        with open(model, "ab") as appending:  # a root server may; another user gets PermissionError (0444)
            appending.write(b"appended by init()")
    except PermissionError:
        found["append"] = "refused"
    (model.parent / "model.joblib").write_bytes(b"trained on the spot")


def run(data):
    return found
