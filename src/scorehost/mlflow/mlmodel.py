"""An MLflow model's `MLmodel` file, read without MLflow: its flavors, its signature and its saved input example.

MLflow writes the signature as JSON text inside the YAML (`signature.inputs`, `.outputs`, `.params`): a list of
column specs (`{"type": "double", "name": "x", "required": true}`) or tensor specs (`{"type": "tensor",
"tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}`), and parameter specs (`{"name": "k", "type": "long",
"default": 5, "shape": null}`). Reading it here lets scorehost locate, describe and build the environment of a model
on the side that has no MLflow installed, and check requests with messages of its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorehost.errors import InvalidModelReference

__all__ = [
    "MLMODEL",
    "ColumnSpec",
    "MLflowModel",
    "ParamSpec",
    "Signature",
    "TensorSpec",
    "find_mlmodel_folder",
    "find_mlmodel_path",
    "read_mlmodel",
]

MLMODEL = "MLmodel"
_SEARCH_DEPTH = 4  # version folder / registered folder / a run's artifact path / the model: deep enough for all


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a column-based signature; `type` is MLflow's name (double, long, string, ...)."""

    type: str
    name: str | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a tensor-based signature: a numpy dtype and a shape (-1: any size)."""

    dtype: str
    shape: tuple[int, ...] | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One inference parameter (`params` of predict): its type, default and shape (None: a scalar)."""

    name: str
    type: str
    default: Any = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """What the model says it takes and gives; empty tuples when a part is not declared."""

    inputs: tuple[ColumnSpec | TensorSpec, ...] = ()
    outputs: tuple[ColumnSpec | TensorSpec, ...] = ()
    params: tuple[ParamSpec, ...] = ()

    @property
    def named_columns(self) -> tuple[ColumnSpec, ...]:
        """The input columns when every input is a named column (a DataFrame model), else ()."""
        if self.inputs and all(isinstance(spec, ColumnSpec) and spec.name for spec in self.inputs):
            return tuple(spec for spec in self.inputs if isinstance(spec, ColumnSpec))
        return ()

    @property
    def tensors(self) -> tuple[TensorSpec, ...]:
        """The input tensors when every input is a tensor, else ()."""
        if self.inputs and all(isinstance(spec, TensorSpec) for spec in self.inputs):
            return tuple(spec for spec in self.inputs if isinstance(spec, TensorSpec))
        return ()

    def describe_inputs(self) -> str:
        """`sepal_length (double), ...` or `a tensor float64 (-1, 4)`, for messages."""
        parts = []
        for spec in self.inputs:
            if isinstance(spec, ColumnSpec):
                parts.append(f"{spec.name} ({spec.type})" if spec.name else spec.type)
            else:
                shape = "" if spec.shape is None else f" {tuple(spec.shape)}"
                parts.append(f"{spec.name + ': ' if spec.name else ''}tensor {spec.dtype}{shape}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class MLflowModel:
    """An `MLmodel` file: the folder holding it, its flavors and what its signature and example say."""

    folder: Path
    flavors: dict[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    example_info: dict[str, Any] = field(default_factory=dict)  # saved_input_example_info
    mlflow_version: str = ""

    @property
    def python_version(self) -> str | None:
        """The Python the model was saved with (`python_function.python_version`), if recorded."""
        version = self.flavors.get("python_function", {}).get("python_version")
        return str(version) if version else None

    def describe(self) -> str:
        """`flavors python_function, sklearn; saved with MLflow 2.9.2` for the start-up log."""
        version = f"; saved with MLflow {self.mlflow_version}" if self.mlflow_version else ""
        return f"flavors {', '.join(self.flavors) or 'none'}{version}"

    def read_input_example(self) -> tuple[Any, Any]:
        """(the example's data, its params or None) as saved, or (None, None) without one. The data is as MLflow
        wrote it: a dataframe as `{"columns": ..., "data": ...}`, an ndarray as a list (or `{"inputs": ...}` from
        MLflow 1.x), named tensors as a dict."""
        path = self.example_info.get("artifact_path")
        if not isinstance(path, str) or not path:
            return None, None
        target = (self.folder / path).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            return None, None
        example = json.loads(target.read_text(encoding="utf-8"))
        params = None
        if self.example_info.get("params") and isinstance(example, dict) and "inputs" in example:
            example, params = example["inputs"], example.get("params")
        elif self.example_info.get("type") == "ndarray" and isinstance(example, dict) and list(example) == ["inputs"]:
            example = example["inputs"]
        return example, params


def read_mlmodel(folder: Path) -> MLflowModel:
    """Read `folder/MLmodel`; InvalidModelReference (naming the file and the fix) when it cannot be read."""
    import yaml

    path = folder / MLMODEL
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidModelReference(f"{folder} holds no MLmodel file: it is not an MLflow model") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidModelReference(f"{path} cannot be read ({error}); save the model again with MLflow") from None
    if not isinstance(data, dict):
        raise InvalidModelReference(f"{path} is not an MLmodel file (a YAML mapping with flavors:)")
    flavors = data.get("flavors") if isinstance(data.get("flavors"), dict) else {}
    info = data.get("saved_input_example_info")
    try:
        signature = _signature(data.get("signature"))
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidModelReference(
            f"{path}: its signature cannot be read ({error}); save the model again with a signature MLflow infers"
        ) from None
    return MLflowModel(
        folder=folder,
        flavors=dict(flavors or {}),
        signature=signature,
        example_info=dict(info) if isinstance(info, dict) else {},
        mlflow_version=str(data.get("mlflow_version") or ""),
    )


def find_mlmodel_folder(root: Path, *, environ_folder: str | None = None) -> Path | None:
    """The folder holding the MLmodel file under `root` (AZUREML_MODEL_DIR, a registered folder): `root` itself, or
    the shallowest folder below with one; None if there is none. `environ_folder` (Azure's MLFLOW_MODEL_FOLDER)
    names it outright. InvalidModelReference when two folders at the same depth hold one."""
    if environ_folder:
        named = root / environ_folder
        return named if (named / MLMODEL).is_file() else None
    if (root / MLMODEL).is_file():
        return root
    level = [root]
    for _ in range(_SEARCH_DEPTH):
        below: list[Path] = []
        for folder in level:
            try:
                below += sorted(item for item in folder.iterdir() if item.is_dir() and not item.name.startswith("."))
            except OSError:
                continue
        found = [folder for folder in below if (folder / MLMODEL).is_file()]
        if len(found) > 1:
            raise InvalidModelReference(_ambiguous(root, [str(path.relative_to(root)) for path in found]))
        if found:
            return found[0]
        level = below
    return None


def find_mlmodel_path(paths: list[str]) -> str | None:
    """Among a version's file paths (`model/MLmodel`, ...), the folder of the shallowest MLmodel file ("" for the
    top); None if there is none. InvalidModelReference when two at the same depth hold one."""
    folders = [os.path.dirname(path) for path in paths if os.path.basename(path) == MLMODEL]
    if not folders:
        return None
    depth = min(_depth(folder) for folder in folders)
    shallowest = sorted(folder for folder in folders if _depth(folder) == depth)
    if len(shallowest) > 1:
        raise InvalidModelReference(_ambiguous(Path("."), shallowest))
    return shallowest[0]


def _depth(folder: str) -> int:
    return 0 if not folder else folder.count("/") + 1


def _ambiguous(root: Path, folders: list[str]) -> str:
    return (
        f"{root} holds several MLflow models ({', '.join(folders)}): serve one (register or pass only its folder), "
        "or set MLFLOW_MODEL_FOLDER to the one to serve"
    )


def _signature(value: Any) -> Signature | None:
    if not isinstance(value, dict):
        return None
    return Signature(
        inputs=_specs(value.get("inputs")),
        outputs=_specs(value.get("outputs")),
        params=tuple(_param(item) for item in _json_list(value.get("params"))),
    )


def _json_list(value: Any) -> list[Any]:
    if value is None:
        return []
    parsed = json.loads(value) if isinstance(value, str) else value
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise ValueError(f"expected a list of specs, got {type(parsed).__name__}")
    return parsed


def _specs(value: Any) -> tuple[ColumnSpec | TensorSpec, ...]:
    specs: list[ColumnSpec | TensorSpec] = []
    for item in _json_list(value):
        if not isinstance(item, dict):
            raise ValueError(f"a spec is {type(item).__name__}, not an object")
        name = item.get("name")
        if item.get("type") == "tensor":
            tensor = item.get("tensor-spec") or {}
            shape = tensor.get("shape")
            specs.append(TensorSpec(str(tensor["dtype"]), None if shape is None else tuple(shape), name))
        else:
            specs.append(ColumnSpec(str(item.get("type", "any")), name, bool(item.get("required", True))))
    return tuple(specs)


def _param(item: Any) -> ParamSpec:
    if not isinstance(item, dict) or "name" not in item:
        raise ValueError("a parameter spec has no name")
    shape = item.get("shape")
    return ParamSpec(str(item["name"]), str(item.get("type", "string")), item.get("default"), _shape(shape))


def _shape(shape: Any) -> tuple[int, ...] | None:
    return None if shape is None else tuple(int(size) for size in shape)
