"""Registered models on a Ray node: copied from the workspace's store, every byte checked against its sha256.

No cluster is needed: `materialize` is what each replica runs on its node before init().
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.errors import CorruptModel
from scorehost.ray.models import manifest, materialize
from scorehost.registry.store import blob_path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace with labels:1 (a file) and encoder:1 (a folder with a subfolder), as registered_multi.py reads."""
    source = tmp_path / "source"
    (source / "encoder" / "weights").mkdir(parents=True)
    (source / "labels.json").write_text(json.dumps({"labels": ["a", "b"]}))
    (source / "encoder" / "vocab.json").write_text(json.dumps({"word": 3}))
    (source / "encoder" / "weights" / "scale.txt").write_text("0.5")
    with Registry(tmp_path / "home") as registry:
        registry.register("labels", source / "labels.json")
        registry.register("encoder", source / "encoder")
    return tmp_path / "home"


def test_the_layout_is_azure_mls_and_a_copy_not_a_link(home: Path, tmp_path: Path) -> None:
    described = manifest(home, ["labels:1", "encoder:1"])
    model_dir = materialize(described, tmp_path / "node")
    assert json.loads((model_dir / "labels" / "1" / "labels.json").read_text()) == {"labels": ["a", "b"]}
    scale = model_dir / "encoder" / "1" / "encoder" / "weights" / "scale.txt"
    assert scale.read_text() == "0.5"
    stored = blob_path(Path(described["store"]), described["versions"][1]["files"][1]["sha256"])
    assert scale.stat().st_ino != stored.stat().st_ino  # the node's own bytes, not the shared store's
    # One model: AZUREML_MODEL_DIR is its version folder, as `scorehost serve --model` lays it out.
    single = materialize(manifest(home, ["labels:1"]), tmp_path / "node")
    assert single.parts[-2:] == ("labels", "1")
    assert (single / "labels.json").is_file()


def test_a_damaged_file_in_the_store_is_refused_with_the_fix(home: Path, tmp_path: Path) -> None:
    described = manifest(home, ["encoder:1"])
    damaged = described["versions"][0]["files"][0]
    blob = blob_path(Path(described["store"]), damaged["sha256"])
    blob.chmod(0o644)
    blob.write_bytes(b'{"word": 4}')  # same size, other bytes
    with pytest.raises(CorruptModel) as refused:
        materialize(described, tmp_path / "node")
    message = str(refused.value)
    assert f"encoder:1 {damaged['path']} arrived damaged on node" in message
    assert damaged["sha256"] in message
    assert "scorehost models verify" in message
    assert not list((tmp_path / "node").iterdir())  # nothing half-copied is left to be served later


def test_a_store_the_node_cannot_see_names_the_option(home: Path, tmp_path: Path) -> None:
    described = manifest(home, ["labels:1"], store=str(tmp_path / "not-mounted"))
    with pytest.raises(CorruptModel, match="not found at .*--ray-model-store"):
        materialize(described, tmp_path / "node")


def test_replicas_starting_together_on_one_node_share_one_copy(home: Path, tmp_path: Path) -> None:
    described = manifest(home, ["labels:1", "encoder:1"])
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(materialize(described, tmp_path / "node"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 4  # a tree of its own each (the threads stand for replicas)...
    verified = [entry.name for entry in (tmp_path / "node").iterdir() if entry.name != "replicas"]
    assert len(verified) == 1  # ...of one verified copy, with no scratch left
    for model_dir in found:
        assert (model_dir / "labels" / "1" / "labels.json").is_file()


def test_what_one_replica_writes_no_other_replica_sees(home: Path, tmp_path: Path) -> None:
    """A script that appends to its model file and writes beside it changes its own tree only."""
    described = manifest(home, ["labels:1"])
    first = materialize(described, tmp_path / "node")
    model = first / "labels.json"
    model.chmod(0o644)  # as root, modes would not stop it anyway
    with model.open("a") as appending:
        appending.write("tampered")
    (first / "model.joblib").write_bytes(b"trained at init")
    second = materialize(described, tmp_path / "node")
    assert json.loads((second / "labels.json").read_text()) == {"labels": ["a", "b"]}
    assert not (second / "model.joblib").exists()
    stored = blob_path(Path(described["store"]), described["versions"][0]["files"][0]["sha256"])
    assert json.loads(stored.read_text()) == {"labels": ["a", "b"]}


def test_the_trees_of_replicas_that_died_are_removed(home: Path, tmp_path: Path) -> None:
    described = manifest(home, ["labels:1"])
    materialize(described, tmp_path / "node")
    replicas = tmp_path / "node" / "replicas"
    dead = replicas / "999999999.0badcafe"  # no such pid
    (dead / "models").mkdir(parents=True)
    materialize(described, tmp_path / "node")
    assert not dead.exists()
