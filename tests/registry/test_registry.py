"""The Registry API on real SQLite files (the core tests on PostgreSQL too) and real files: versions, aliases, content
addressing, model folders."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.errors import CorruptModel, InvalidModelReference, ModelInUse, UnknownModel
from scorehost.timestamps import parse_iso_utc


@pytest.fixture
def registry(tmp_path: Path, request: pytest.FixtureRequest) -> Registry:
    # Tests marked `usefixtures("database_url")` run on SQLite and on PostgreSQL; the others on the home's SQLite file.
    url = request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    with Registry(tmp_path / "home", url=url) as opened:
        yield opened  # type: ignore[misc]


def _file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _folder(root: Path) -> Path:
    _file(root / "weights.bin", b"w" * 1000)
    _file(root / "config" / "labels.json", b'["cat", "dog"]')
    _file(root / "config" / "deep" / "vocab.txt", b"a\nb\n")
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("database_url")
def test_versions_count_up_per_name_and_keep_metadata(registry: Registry, tmp_path: Path) -> None:
    model = _file(tmp_path / "src" / "sklearn_mnist_model.pkl", b"model-v1")
    first = registry.register("sklearn_mnist", model, tags={"team": "vision"}, properties={"accuracy": "0.97"})
    second = registry.register("sklearn_mnist", _folder(tmp_path / "retrained"), description="retrained on May data")
    other = registry.register("encoder", model)

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.kind == "file"
    assert first.root == "sklearn_mnist_model.pkl"
    assert first.size == len(b"model-v1")
    assert first.file_count == 1
    assert dict(first.tags) == {"team": "vision"}
    assert dict(first.properties) == {"accuracy": "0.97"}
    assert second.kind == "folder"
    assert second.root == "retrained"
    assert second.file_count == 3
    assert second.description == "retrained on May data"
    assert second.created_at >= first.created_at
    assert [v.version for v in registry.list_versions("sklearn_mnist")] == [1, 2]
    assert [(v.name, v.version) for v in registry.list_versions()] == [
        ("encoder", 1),
        ("sklearn_mnist", 1),
        ("sklearn_mnist", 2),
    ]
    summaries = {s.name: s for s in registry.list_models()}
    assert summaries["sklearn_mnist"].versions == 2
    assert summaries["sklearn_mnist"].latest == 2
    shown = first.to_json()["created_at"]  # ISO 8601 UTC to the millisecond, as every time scorehost prints
    assert shown.endswith("Z")
    assert abs(parse_iso_utc(shown) - first.created_at) < 0.001


def test_files_are_listed_with_their_sha256_and_the_folder_name_kept(registry: Registry, tmp_path: Path) -> None:
    version = registry.register("m", _folder(tmp_path / "retrained"))
    files = {item.path: item for item in registry.files("m:1")}
    assert set(files) == {"retrained/weights.bin", "retrained/config/labels.json", "retrained/config/deep/vocab.txt"}
    assert files["retrained/weights.bin"].digest == _sha(b"w" * 1000)
    assert files["retrained/config/labels.json"].size == len(b'["cat", "dog"]')
    assert version.size == sum(item.size for item in files.values())


def test_identical_content_is_stored_once(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    first = registry.register("a", _file(tmp_path / "x" / "model.bin", data))
    second = registry.register("b", _file(tmp_path / "y" / "model.bin", data))
    third = registry.register("c", _file(tmp_path / "z" / "other-name.bin", data))
    blobs = list((registry.home / "store" / "sha256").rglob("*"))
    assert [blob.name for blob in blobs if blob.is_file()] == [_sha(data)]
    # Same files, same paths: the same version digest; another file name: another version digest.
    assert first.digest == second.digest != third.digest
    blob = registry.store.path_of(_sha(data))
    assert blob.stat().st_mode & 0o777 == 0o444
    assert not list((registry.home / "store" / "tmp").iterdir())


@pytest.mark.usefixtures("database_url")
def test_references_resolve_everywhere(registry: Registry, tmp_path: Path) -> None:
    for content in (b"1", b"2", b"3"):
        registry.register("m", _file(tmp_path / "model.pkl", content))
    registry.set_alias("m", "production", 2)
    assert registry.resolve("m") == ("m", 3)
    assert registry.resolve("m:latest") == ("m", 3)
    assert registry.resolve("m:1") == ("m", 1)
    assert registry.resolve("m:production") == ("m", 2)
    assert registry.get("m:production").aliases == ("production",)
    # An alias can be set from another alias (promote staging to production).
    registry.set_alias("m", "staging", 3)
    assert registry.set_alias("m", "production", "staging").version == 3
    assert registry.resolve("m:production") == ("m", 3)
    assert {s.name: dict(s.aliases) for s in registry.list_models()} == {"m": {"production": 3, "staging": 3}}
    assert registry.remove_alias("m", "staging") == 3
    with pytest.raises(UnknownModel, match=r"model 'm' has no alias 'staging' \(aliases: production\)"):
        registry.resolve("m:staging")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", r"no model named 'nope' \(registered: m\); `scorehost models list` shows them all"),
        ("m:9", r"model 'm' has no version 9 \(versions: 1\)"),
        ("m:prod", r"model 'm' has no alias 'prod' \(it has no aliases\)"),
        ("nope:prod", r"no model named 'nope'"),
    ],
)
def test_unknown_references_say_what_exists(registry: Registry, tmp_path: Path, ref: str, message: str) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"x"))
    with pytest.raises(UnknownModel, match=message):
        registry.get(ref)


@pytest.mark.usefixtures("database_url")
def test_empty_registry_says_so(registry: Registry) -> None:
    with pytest.raises(UnknownModel, match=r"the registry is empty"):
        registry.get("m")
    assert registry.list_models() == []
    assert registry.list_versions() == []


@pytest.mark.usefixtures("database_url")
def test_alias_needs_an_existing_version(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"x"))
    with pytest.raises(UnknownModel, match="has no version 4"):
        registry.set_alias("m", "production", 4)
    with pytest.raises(InvalidModelReference, match="a number means a version"):
        registry.set_alias("m", "2", 1)


@pytest.mark.usefixtures("database_url")
def test_delete_needs_force_when_an_alias_points_to_it(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"one"))
    registry.register("m", _file(tmp_path / "model.pkl", b"two"))
    registry.set_alias("m", "production", 1)
    with pytest.raises(ModelInUse, match=r"m:1 is what m:production points to; .* or delete with --force"):
        registry.delete("m:1")
    assert registry.resolve("m:production") == ("m", 1)  # nothing was removed

    result = registry.delete("m:production", force=True)
    assert (result.version, result.aliases_removed, result.bytes_freed) == (1, ("production",), 3)
    assert not registry.store.path_of(_sha(b"one")).exists()
    with pytest.raises(UnknownModel, match="has no alias 'production'"):
        registry.get("m:production")
    # A deleted number is never handed out again: m:1 must not silently mean other bytes later.
    assert registry.register("m", _file(tmp_path / "model.pkl", b"three")).version == 3
    assert [v.version for v in registry.list_versions("m")] == [2, 3]


def test_delete_keeps_blobs_other_versions_share(registry: Registry, tmp_path: Path) -> None:
    shared = _file(tmp_path / "model.pkl", b"shared bytes")
    registry.register("a", shared)
    registry.register("b", shared)
    assert registry.delete("a:1").bytes_freed == 0
    assert registry.store.path_of(_sha(b"shared bytes")).exists()
    assert registry.verify().ok


@pytest.mark.usefixtures("database_url")
def test_deleting_every_version_keeps_the_name_and_its_numbering(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"x"))
    registry.delete("m:1")
    with pytest.raises(UnknownModel, match="has no versions left"):
        registry.get("m")
    assert [(s.name, s.versions, s.latest) for s in registry.list_models()] == [("m", 0, None)]
    assert registry.register("m", _file(tmp_path / "model.pkl", b"y")).version == 2


def test_download_writes_the_original_names_byte_for_byte(registry: Registry, tmp_path: Path) -> None:
    source = _folder(tmp_path / "retrained")
    registry.register("m", source)
    registry.register("m", _file(tmp_path / "single" / "model.pkl", b"pickle"))
    out = tmp_path / "out"
    assert registry.download("m:1", out) == out / "retrained"
    for original in source.rglob("*"):
        if original.is_file():
            copy = out / "retrained" / original.relative_to(source)
            assert copy.read_bytes() == original.read_bytes()
            assert copy.stat().st_ino != registry.store.path_of(_sha(original.read_bytes())).stat().st_ino
    assert registry.download("m", out) == out / "model.pkl"
    assert (out / "model.pkl").read_bytes() == b"pickle"
    with pytest.raises(InvalidModelReference, match="already exists; .* or pass --force"):
        registry.download("m", out)
    (out / "model.pkl").write_bytes(b"edited")
    registry.download("m", out, overwrite=True)
    assert (out / "model.pkl").read_bytes() == b"pickle"
    assert sorted(p.name for p in out.iterdir()) == ["model.pkl", "retrained"]  # no scratch left behind


def _corrupt(registry: Registry, data: bytes, replacement: bytes) -> Path:
    blob = registry.store.path_of(_sha(data))
    blob.chmod(0o644)
    blob.write_bytes(replacement)
    return blob


def test_corrupted_blobs_are_found_by_verify_and_refused_by_download(registry: Registry, tmp_path: Path) -> None:
    source = _folder(tmp_path / "retrained")
    registry.register("m", source)
    registry.register("other", _file(tmp_path / "o.bin", b"fine"))
    assert registry.verify().ok
    _corrupt(registry, b"w" * 1000, b"x" * 1000)  # same size: only the hash can tell

    report = registry.verify(quarantine=False)
    assert not report.ok
    assert (report.versions, report.files) == (2, 4)
    assert [str(problem) for problem in report.problems] == [
        f"m:1 retrained/weights.bin: sha256 is {_sha(b'x' * 1000)}, {_sha(b'w' * 1000)} was registered"
    ]
    assert registry.verify("other").ok

    out = tmp_path / "out"
    with pytest.raises(CorruptModel, match=r"m:1 retrained/weights.bin: sha256 is .* nothing was written"):
        registry.download("m:1", out)
    assert not out.exists()  # not even the folder it would have created

    # verify moves the damaged blob aside: nothing serves it, and registering the original repairs it.
    (problem,) = registry.verify().problems
    assert f"; moved to {registry.home / 'store' / 'damaged'}" in problem.problem
    with pytest.raises(CorruptModel, match="missing from the store"):
        registry.model_dir(["m:1"])
    assert registry.register("m", source).version == 2
    assert registry.verify().ok
    assert (registry.download("m:1", out) / "weights.bin").read_bytes() == b"w" * 1000


def test_a_damaged_blob_of_another_size_is_replaced_by_the_next_registration(
    registry: Registry, tmp_path: Path
) -> None:
    model = _file(tmp_path / "model.pkl", b"the original bytes")
    registry.register("m", model)
    _corrupt(registry, b"the original bytes", b"truncated")
    registry.register("again", model)
    assert registry.verify().ok


def test_a_missing_blob_is_reported_and_stops_serving_layouts(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"bytes"))
    registry.store.path_of(_sha(b"bytes")).unlink()
    assert [p.problem for p in registry.verify().problems] == ["missing from the store"]
    with pytest.raises(CorruptModel, match="m:1 model.pkl: missing from the store; run `scorehost models verify`"):
        registry.model_dir(["m"])
    with pytest.raises(CorruptModel, match="missing from the store"):
        registry.download("m", tmp_path / "out")


def test_one_model_is_served_from_a_folder_of_its_own(registry: Registry, tmp_path: Path) -> None:
    registry.register("sklearn_mnist", _file(tmp_path / "sklearn_mnist_model.pkl", b"model"))
    model_dir = registry.model_dir(["sklearn_mnist"])
    assert model_dir.parts[-2:] == ("sklearn_mnist", "1")
    assert model_dir.is_relative_to(registry.home / "servers")
    served = model_dir / "sklearn_mnist_model.pkl"
    assert served.read_bytes() == b"model"
    blob = registry.store.path_of(_sha(b"model"))
    assert served.stat().st_ino != blob.stat().st_ino  # a reflink or a copy: nothing leads back to the blob
    assert blob.stat().st_nlink == 1
    assert served.stat().st_mode & 0o777 == 0o444
    other = registry.model_dir(["sklearn_mnist:1"])
    assert other != model_dir  # each server its own
    registry.release_model_dir(model_dir)
    assert not model_dir.exists()
    assert other.exists()


def test_several_models_layout_holds_each_name_and_version(registry: Registry, tmp_path: Path) -> None:
    registry.register("iris_clf", _file(tmp_path / "model.pkl", b"iris"))
    registry.register("size_reg", _file(tmp_path / "model.pkl", b"size-1"))
    registry.register("size_reg", _folder(tmp_path / "retrained"))
    root = registry.model_dir(["iris_clf", "size_reg:1", "size_reg:2", "iris_clf:1"])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "iris_clf/1/model.pkl",
        "size_reg/1/model.pkl",
        "size_reg/2/retrained/config/deep/vocab.txt",
        "size_reg/2/retrained/config/labels.json",
        "size_reg/2/retrained/weights.bin",
    ]
    with pytest.raises(InvalidModelReference, match="no model given"):
        registry.model_dir([])


def test_gc_removes_orphans(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"one"))
    registry.register("m", _file(tmp_path / "model.pkl", b"two"))
    served = registry.model_dir(["m:1"])
    orphan = registry.store.path_of(_sha(b"orphan"))  # as a registration killed before its commit leaves
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    registry.delete("m:1")
    report = registry.gc()
    assert (report.blobs, report.bytes_freed, report.server_folders) == (1, len(b"orphan"), 0)
    assert not orphan.exists()
    assert (served / "model.pkl").read_bytes() == b"one"  # this process still serves it
    assert registry.gc().blobs == 0


def test_gc_removes_the_shared_layouts_of_earlier_versions(registry: Registry) -> None:
    old = registry.home / "layouts" / "6f09c2" / "models" / "m" / "1"
    old.mkdir(parents=True)
    (old.parents[2] / "refs.json").write_text("[]")
    assert registry.gc().server_folders == 1
    assert not (registry.home / "layouts").exists()


def test_bad_sources_are_refused_before_anything_is_stored(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidModelReference, match=r"cannot register .*missing: no such file or folder"):
        registry.register("m", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelReference, match="the folder has no files"):
        registry.register("m", tmp_path / "empty")
    outside = _file(tmp_path / "secret.txt", b"secret")
    escaping = _folder(tmp_path / "escaping")
    (escaping / "link.txt").symlink_to(outside)
    with pytest.raises(InvalidModelReference, match="a symbolic link to .*secret.txt, outside the folder"):
        registry.register("m", escaping)
    absolute = _folder(tmp_path / "absolute")
    (absolute / "etc").symlink_to("/etc")
    with pytest.raises(InvalidModelReference, match="a symbolic link to a folder"):
        registry.register("m", absolute)
    with pytest.raises(InvalidModelReference, match="not a valid model name"):
        registry.register("../../etc", outside)
    with pytest.raises(InvalidModelReference, match="tag 'k' must have a string value"):
        registry.register("m", outside, tags={"k": 1})  # type: ignore[dict-item]
    assert registry.list_models() == []
    assert [p for p in (registry.home / "store" / "sha256").rglob("*") if p.is_file()] == []


def test_a_symlink_inside_the_folder_is_stored_as_its_content(registry: Registry, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "linked")
    (folder / "alias.bin").symlink_to(folder / "weights.bin")
    registry.register("m", folder)
    files = {item.path: item.digest for item in registry.files("m")}
    assert files["linked/alias.bin"] == files["linked/weights.bin"]


def test_stored_paths_that_would_escape_are_refused_on_the_way_out(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"x"))
    # A tampered database (say, a shared one) must not make scorehost write outside the destination.
    with sqlite3.connect(registry.home / "registry.db") as db:
        db.execute("UPDATE files SET path = '../../escaped.pkl'")
    with pytest.raises(InvalidModelReference, match="refusing the stored path '../../escaped.pkl'"):
        registry.download("m", tmp_path / "out" / "deep")
    with pytest.raises(InvalidModelReference, match="refusing the stored path"):
        registry.model_dir(["m"])
    assert not (tmp_path / "escaped.pkl").exists()
    assert not (tmp_path / "out" / "escaped.pkl").exists()


def test_the_workspace_comes_from_scorehost_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREHOST_HOME", str(tmp_path / "ws"))
    with Registry() as registry:
        assert registry.home == tmp_path / "ws"
        assert registry.url == f"sqlite:///{tmp_path / 'ws' / 'registry.db'}"
    monkeypatch.setenv("SCOREHOST_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with Registry() as registry:
        registry.register("m", _file(tmp_path / "model.pkl", b"x"))
    assert (tmp_path / "elsewhere.db").exists()
    assert (tmp_path / "ws").stat().st_mode & 0o777 == 0o700


def test_a_deleted_version_keeps_serving_from_its_folder(registry: Registry, tmp_path: Path) -> None:
    registry.register("m", _file(tmp_path / "model.pkl", b"served"))
    registry.register("m", _file(tmp_path / "model.pkl", b"newer"))
    served = registry.model_dir(["m:1"])  # what `scorehost serve --model m:1` does
    registry.delete("m:1")
    assert registry.gc().server_folders == 0
    # A worker restarted after the delete must still find its model files.
    assert (served / "model.pkl").read_bytes() == b"served"
