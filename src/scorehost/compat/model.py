"""`Model.get_model_path`: where a registered model's files are, in every layout a deployment can have.

Looked at in order (the first that holds the model wins):

1. `$AZUREML_MODEL_DIR`, the deployment's models:
   * one model: the variable is that model's version folder (`.../<name>/<version>`), so its parent is named
     after the model; another `version` is looked for beside it;
   * several models: the variable is a folder holding `<name>/<version>/...` for each;
   * the variable is the model's own folder (`.../<name>`, holding `<version>/...` or the files themselves).
2. `azureml-models/<name>/<version>/` in the app root (the working directory), as the v1 SDK does.
3. `<name>` in the app root, the SDK's last resort (whatever `version` says, as in the SDK).

Without `version`, the highest numeric version folder is used. A version folder holding exactly one file or
folder gives that entry's path; one holding several gives the version folder itself. Hidden entries
(`.DS_Store`, `.amlignore`) are not counted.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MODEL_DIR_VARIABLE", "MODELS_FOLDER", "Model", "ModelNotFound"]

MODEL_DIR_VARIABLE = "AZUREML_MODEL_DIR"
MODELS_FOLDER = "azureml-models"


class ModelNotFound(FileNotFoundError):
    """No place `get_model_path` looks at holds the model; the message lists each place and what was there."""

    def __init__(self, model_name: str, version: str | None, looked: list[str]) -> None:
        wanted = f"{model_name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(
            f"Model {wanted} not found. Looked at: " + "; ".join(looked) + ". "
            f"Set {MODEL_DIR_VARIABLE} to the model's version folder (<name>/<version>) "
            "or to a folder holding <name>/<version>/ for each model."
        )
        self.model_name = model_name
        self.version = version
        self.looked = looked


class Model:
    """The part of `azureml.core.model.Model` that entry scripts use: `Model.get_model_path(...)`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            "scorehost provides Model.get_model_path() only; a workspace Model object needs the azureml-core SDK."
        )

    @staticmethod
    def get_model_path(model_name: str, version: int | str | None = None, _workspace: object = None) -> str:
        """Return the local path of a registered model's file, or of its folder when it has several files.

        `_workspace` is accepted for compatibility and ignored: models are never downloaded.
        Raises `ModelNotFound` (a `FileNotFoundError`) naming every place it looked.
        """
        wanted = None if version is None else str(version)
        looked: list[str] = []
        found = _in_model_dir(model_name, wanted, looked) or _in_app_root(model_name, wanted, looked)
        if found is None:
            raise ModelNotFound(model_name, wanted, looked)
        return str(found)


def _in_model_dir(name: str, version: str | None, looked: list[str]) -> Path | None:
    value = os.environ.get(MODEL_DIR_VARIABLE)
    if not value:
        looked.append(f"{MODEL_DIR_VARIABLE} (not set)")
        return None
    root = Path(os.path.normpath(value))
    if root.parent.name == name and root.is_dir():
        # One model: the variable is its version folder; another version may sit beside it.
        folder = root if version in (None, root.name) else root.parent / version
        if folder.is_dir():
            return _entry_of(folder, looked)
        looked.append(f"{folder} (no version {version} beside {MODEL_DIR_VARIABLE}={value})")
        return None
    if (root / name).exists():
        return _versioned(root / name, version, looked)
    if root.name == name and root.is_dir():
        return _versioned(root, version, looked)
    looked.append(f"{MODEL_DIR_VARIABLE}={value} ({_describe(root, name)})")
    return None


def _in_app_root(name: str, version: str | None, looked: list[str]) -> Path | None:
    app_root = Path.cwd()
    cache = app_root / MODELS_FOLDER / name
    if cache.is_dir():
        found = _versioned(cache, version, looked)
        if found is not None:
            return found
    else:
        looked.append(f"{cache} (missing)")
    own = app_root / name
    if own.exists():
        return own
    looked.append(f"{own} (missing)")
    return None


def _versioned(folder: Path, version: str | None, looked: list[str]) -> Path | None:
    """The model in `folder/<version>`, or `folder` itself when it is a file or holds no version folders."""
    if not folder.is_dir():
        if version is None:
            return folder
        looked.append(f"{folder} (a file, not a folder of versions)")
        return None
    versions = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if version is not None:
        chosen = folder / version
        if chosen.is_dir():
            return _entry_of(chosen, looked)
        have = ", ".join(str(number) for number, _ in versions) or "none"
        looked.append(f"{folder} (no version {version}; versions there: {have})")
        return None
    if not versions:
        return folder  # the model's files themselves, unversioned
    return _entry_of(versions[-1][1], looked)


def _entry_of(version_folder: Path, looked: list[str]) -> Path | None:
    entries = [p for p in version_folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        looked.append(f"{version_folder} (empty)")
        return None
    return entries[0] if len(entries) == 1 else version_folder


def _describe(root: Path, name: str) -> str:
    if not root.is_dir():
        return "missing" if not root.exists() else "not a folder"
    return f"its parent is not named {name!r} and it holds no {name!r}"
