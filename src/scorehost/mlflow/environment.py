"""The Python environment an MLflow model declares, as scorehost's builder takes it.

MLflow saves `requirements.txt`, `conda.yaml` and `python_env.yaml` beside `MLmodel`. The requirements file is read
(else the conda file), with two changes for serving: `mlflow` becomes `mlflow-skinny` at the same version (the
package without the tracking server, its UI and database drivers: what loading and predicting need, and what Azure
ML's MLflow images install), and `pandas` is added when missing (MLflow's pyfunc loader and the built-in scoring
script need it). The Python version is the one the model was saved with, or the nearest that scorehost's runtime
supports: a pickled model usually loads in a newer Python, and the model's author did not choose that file's pin.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from scorehost.environments.pep508 import parse_requirement
from scorehost.environments.spec import EnvironmentSpec, read_environment_file
from scorehost.mlflow.mlmodel import read_mlmodel

__all__ = ["SERVING_REQUIREMENTS", "environment_of_model", "model_python", "serving_requirements"]

# Added when the model's own files do not name them: the built-in scoring script cannot run without them.
SERVING_REQUIREMENTS = ("mlflow-skinny", "pandas")
_METADATA_FILES = ("MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml")


def environment_of_model(folder: Path, *, warnings: list[str], source: str | None = None) -> dict[str, Any]:
    """The environment specification (`EnvironmentSpec.to_json()`, Python pinned to an interpreter that exists
    here) of the MLflow model in `folder`; InvalidEnvironment names the file and the fix. `source` names the model
    in messages instead of its folder."""
    from scorehost.environments import choose_python

    spec = _declared(folder, warnings)
    requirements = serving_requirements(spec.requirements)
    asked = model_python(folder) or spec.python
    spec = dataclasses.replace(spec, requirements=requirements, python=asked, source=source or spec.source)
    warnings.extend(spec.warnings())
    chosen = choose_python(asked, nearest=True)
    if asked is not None and not f"{chosen.version}.".startswith(f"{asked}."):
        warnings.append(
            f"the MLflow model was saved with Python {asked}; its environment is built with {chosen.version}, the "
            "nearest that scorehost's runtime supports"
        )
    data = spec.to_json()
    data["python"] = chosen.minor_version
    return data


def serving_requirements(requirements: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`requirements` with `mlflow` served by `mlflow-skinny` at the same version, and SERVING_REQUIREMENTS added
    where missing."""
    kept: list[str] = []
    names: set[str] = set()
    for text in requirements:
        try:
            requirement = parse_requirement(text)
        except ValueError:  # a URL or a local path: installed as written
            kept.append(text)
            continue
        if requirement.name == "mlflow" and not requirement.url:
            requirement = dataclasses.replace(requirement, name="mlflow-skinny", extras=())
        names.add(requirement.name)
        if str(requirement) not in kept:
            kept.append(str(requirement))
    kept += [name for name in SERVING_REQUIREMENTS if name not in names]
    return tuple(kept)


def model_python(folder: Path) -> str | None:
    """ "3.11" when python_env.yaml (or MLmodel) says the model was saved with Python 3.11.x; else None."""
    import yaml

    version: Any = None
    try:
        data = yaml.safe_load((folder / "python_env.yaml").read_text(encoding="utf-8"))
        version = data.get("python") if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    if not version:
        try:
            version = read_mlmodel(folder).python_version
        except ValueError:
            version = None
    if not version:
        return None
    parts = str(version).strip().split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(part.isdigit() for part in parts[:2]) else None


def _declared(folder: Path, warnings: list[str]) -> EnvironmentSpec:
    for name in ("requirements.txt", "conda.yaml"):
        if (folder / name).is_file():
            return read_environment_file(folder / name)
    warnings.append(
        f"the MLflow model in {folder} declares no requirements (no requirements.txt or conda.yaml): its "
        f"environment holds only {', '.join(SERVING_REQUIREMENTS)}; give the deployment an environment (a conda "
        "file, or --environment) with its libraries"
    )
    return EnvironmentSpec(source=str(folder / "MLmodel"))


def metadata_files() -> tuple[str, ...]:
    """The files beside MLmodel that say what the model is and needs (copied out of the registry to be read)."""
    return _METADATA_FILES
