"""Conda environment files read as PyPI requirements: the mapping table, the pip section, and errors that name
the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.environments import CondaDependency, map_conda_dependency, read_environment_file
from scorehost.errors import InvalidEnvironment


@pytest.mark.parametrize(
    ("conda", "expected"),
    [
        ("numpy", "numpy"),
        ("numpy=1.26", "numpy==1.26.*"),  # conda's '=' is a prefix
        ("numpy=1.26.4", "numpy==1.26.4.*"),
        ("numpy==1.26.4", "numpy==1.26.4"),
        ("numpy>=1.2,<2", "numpy<2,>=1.2"),
        ("numpy >= 1.2 , < 2", "numpy<2,>=1.2"),
        ("numpy 1.26.4", "numpy==1.26.4"),  # MatchSpec's space form: exact
        ("numpy 1.26.4 py311h64a7726_0", "numpy==1.26.4"),
        ("numpy 1.26.*", "numpy==1.26.*"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),  # a build string makes the version exact; dropped
        ("conda-forge::numpy=1.26", "numpy==1.26.*"),
        ("numpy[version='>=1.2']", "numpy>=1.2"),
        ("pytorch=2.1", "torch==2.1.*"),
        ("pytorch-cpu", "torch"),
        ("py-xgboost=1.7", "xgboost==1.7.*"),
        ("tensorflow-gpu=2.12", "tensorflow==2.12.*"),
        ("py-opencv", "opencv-python"),
        ("opencv=4.8", "opencv-python==4.8.*"),
        ("matplotlib-base=3.8", "matplotlib==3.8.*"),
        ("python-dateutil", "python-dateutil"),
        ("pyyaml", "pyyaml"),
        ("scikit-learn=1.5.2", "scikit-learn==1.5.2.*"),
        ("lightgbm", "lightgbm"),
        ("Scikit_Learn", "scikit-learn"),
    ],
)
def test_conda_packages_map_to_pypi_requirements(conda: str, expected: str) -> None:
    assert map_conda_dependency(conda) == CondaDependency("requirement", expected)


@pytest.mark.parametrize(
    "conda",
    ["cudatoolkit=11.8", "cudnn", "nccl", "mkl", "mkl-service", "mkl_fft", "blas=*=openblas", "intel-openmp",
     "libgcc-ng", "_libgcc_mutex=0.1=main", "openssl", "ca-certificates", "ld_impl_linux-64", "vs2015_runtime",
     "cuda-nvcc=12.1", "magma-cuda121", "libcurl", "zlib", "sqlite", "tk", "readline"],
)  # fmt: skip
def test_conda_only_packages_are_skipped(conda: str) -> None:
    assert map_conda_dependency(conda).kind == "skipped"


@pytest.mark.parametrize("conda", ["pip", "pip=23.3", "setuptools", "wheel"])
def test_packaging_tools_are_dropped(conda: str) -> None:
    assert map_conda_dependency(conda).kind == "tool"


@pytest.mark.parametrize(
    ("conda", "version"),
    [("python=3.9", "3.9"), ("python==3.11.4", "3.11.4"), ("python 3.12", "3.12"), ("python=3.10.12=h1_0", "3.10.12"),
     ("python", ""), ("python>=3.8", ">=3.8")],
)  # fmt: skip
def test_python_gives_the_version(conda: str, version: str) -> None:
    assert map_conda_dependency(conda) == CondaDependency("python", version)


def test_either_version_has_no_pip_equivalent() -> None:
    with pytest.raises(ValueError, match="pick one"):
        map_conda_dependency("numpy=1.2|1.3")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_azure_ml_conda_file(tmp_path: Path) -> None:
    _write(tmp_path / "more.txt", "requests>=2\n")
    conda = _write(
        tmp_path / "conda.yml",
        """\
name: project_environment
channels:
  - conda-forge
  - pytorch
dependencies:
  - python=3.9
  - pip=23.1
  - cudatoolkit=11.8
  - mkl
  - pytorch=2.1
  - scikit-learn=1.5.2
  - pip:
      - azureml-defaults==1.49.0
      - inference-schema[numpy-support]==1.7.1
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - -r more.txt
      - azureml-inference-server-http
""",
    )
    spec = read_environment_file(conda)
    assert spec.python == "3.9"
    assert spec.requirements == (
        "torch==2.1.*",
        "scikit-learn==1.5.2.*",
        "inference-schema[numpy-support]==1.7.1",
        "requests>=2",
    )
    assert spec.index_options == ("--extra-index-url", "https://download.pytorch.org/whl/cpu")
    assert spec.skipped == ("cudatoolkit", "mkl")
    assert spec.provided == ("azureml-defaults==1.49.0", "azureml-inference-server-http")
    assert spec.source == str(conda)
    assert spec.warnings() == [
        "skipped conda packages with no PyPI equivalent: cudatoolkit, mkl",
        "not installed, scorehost is the server: azureml-defaults==1.49.0, azureml-inference-server-http "
        "(scorehost serves the script itself)",
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("dependencies:\n  - numpy\n - bad: [\n", 3, "not valid YAML"),
        ("dependencies:\n  - numpy\n  - 3.9\n", 3, "dependency 3.9 is not a string"),
        ("dependencies:\n  - numpy\n  - {conda: [x]}\n", 3, "is not a string"),
        ("dependencies:\n  - numpy=1.2|1.3\n", 2, "pick one"),
        ("dependencies:\n  - pip:\n    - six\n    - 'six ==='\n", 4, "is not a requirement uv can read"),
        ("dependencies:\n  - pip:\n    - -e ./missing\n", 3, "does not exist"),
        ("dependencies:\n  - pip:\n    - --use-feature fast\n", 3, "pip option --use-feature is not supported"),
        ("dependencies: numpy\n", 1, "must be a list"),
    ],
)
def test_unreadable_conda_files_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    conda = _write(tmp_path / "env.yaml", text)
    with pytest.raises(InvalidEnvironment) as caught:
        read_environment_file(conda)
    assert caught.value.message.startswith(f"{conda}, line {line}: ")
    assert message in caught.value.message


def test_a_missing_or_empty_conda_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidEnvironment, match="no such file"):
        read_environment_file(tmp_path / "absent.yml")
    with pytest.raises(InvalidEnvironment, match="needs a mapping with `dependencies:`"):
        read_environment_file(_write(tmp_path / "empty.yml", ""))
