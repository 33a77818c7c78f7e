"""read_document on real files: the line of every field, the errors for files that cannot be read, `--set`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scorehost.azureml.document import Document, apply_overrides, read_document
from scorehost.errors import ProjectFileError

YamlFile = Callable[..., Path]


def _error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ProjectFileError) as caught:
        read_document(path, overrides)
    return caught.value.message


# -- lines -------------------------------------------------------------------------------------------------------


def test_every_field_keeps_the_line_it_was_written_on(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        # a comment first
        name: blue

        request_settings:
          request_timeout_ms: 3000
          max_concurrent_requests_per_instance: 2
        data_collector:
          request_logging:
            capture_headers:
              - x-request-id
              - x-client
        """
    )
    document = read_document(path)
    assert document.data == {
        "name": "blue",
        "request_settings": {"request_timeout_ms": 3000, "max_concurrent_requests_per_instance": 2},
        "data_collector": {"request_logging": {"capture_headers": ["x-request-id", "x-client"]}},
    }
    assert document.lines[("name",)] == 2
    assert document.lines[("request_settings",)] == 4
    assert document.lines[("request_settings", "request_timeout_ms")] == 5
    assert document.lines[("request_settings", "max_concurrent_requests_per_instance")] == 6
    assert document.lines[("data_collector", "request_logging", "capture_headers", 1)] == 11
    assert document.path == path
    assert document.folder == path.parent
    assert document.overridden == set()


def test_where_names_the_file_and_line_or_the_nearest_parent(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nrequest_settings:\n  request_timeout_ms: 3000\n")
    document = read_document(path)
    assert document.where(("request_settings", "request_timeout_ms")) == f"{path}, line 3"
    # A field that is not in the file is placed at its parent's line.
    assert document.where(("request_settings", "max_queue_wait_ms")) == f"{path}, line 2"
    assert document.where(()) == str(path)
    error = document.error(("name",), "bad name")
    assert isinstance(error, ProjectFileError)
    assert str(error) == f"{path}, line 1: bad name"


def test_windows_line_endings_and_a_byte_order_mark_keep_the_lines(yaml_file: YamlFile, tmp_path: Path) -> None:
    path = tmp_path / "notepad.yml"
    path.write_bytes("\ufeffname: blue\r\nendpoint_name: my-endpoint\r\ninstance_count: 2\r\n".encode())
    document = read_document(path)
    assert document.data == {"name": "blue", "endpoint_name": "my-endpoint", "instance_count": 2}
    assert document.lines[("instance_count",)] == 3


def test_duplicate_top_level_key_is_refused_with_both_lines(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\ninstance_count: 1\nname: green\n")
    message = _error(path)
    assert str(path) in message
    assert "line 4" in message
    assert "first on line 1" in message
    assert "name is given twice" in message


def test_duplicate_nested_key_is_refused_with_its_dotted_name(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        name: blue
        request_settings:
          request_timeout_ms: 3000
          max_queue_wait_ms: 10
          request_timeout_ms: 5000
        """
    )
    message = _error(path)
    assert "line 5" in message
    assert "first on line 3" in message
    assert "request_settings.request_timeout_ms is given twice" in message


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("name: blue\nendpoint_name: my-endpoint\ncode: a: b\n", 3, "mapping values are not allowed"),
        ("name: blue\nendpoint_name: my-endpoint\n  instance_count: 1\n", 3, "mapping values are not allowed"),
        ("name: blue\n\tinstance_count: 1\n", 2, "cannot start any token"),
        ("name: blue\nmodel: {path: a\ninstance_count: 1\n", 3, ""),
    ],
    ids=["two-colons", "bad-indent", "tab", "unclosed-flow-mapping"],
)
def test_invalid_yaml_names_the_file_and_line(yaml_file: YamlFile, text: str, line: int, problem: str) -> None:
    path = yaml_file(text)
    message = _error(path)
    assert message.startswith(f"{path}, line {line}: not valid YAML")
    assert problem in message


def test_field_names_must_be_text(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\n1: one\n")
    message = _error(path)
    assert f"{path}, line 2" in message
    assert "field names are text" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n", "---\n"])
def test_an_empty_file_is_refused(yaml_file: YamlFile, text: str) -> None:
    path = yaml_file(text)
    message = _error(path)
    assert str(path) in message
    assert "empty" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [("- name: blue\n- name: green\n", 1), ("just some text\n", 1), ("# header\n\n42\n", 3), ("null\n", 1)],
    ids=["list", "string", "number", "null"],
)
def test_a_file_that_is_not_a_mapping_is_refused(yaml_file: YamlFile, text: str, line: int) -> None:
    path = yaml_file(text)
    message = _error(path)
    assert f"{path}, line {line}" in message
    assert "mapping" in message


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: blue\ndescription: modèle de régression\n".encode("latin-1"))
    message = _error(path)
    assert str(path) in message
    assert "UTF-8" in message
    first_bad = len(b"name: blue\ndescription: mod")
    assert f"byte {first_bad}" in message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "endpoint.yml"
    message = _error(path)
    assert str(path) in message
    assert "no such file" in message


def test_a_folder_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path)
    assert str(tmp_path) in message
    assert "folder" in message


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    path.write_bytes(b"name: blue\n" + b"# padding padding padding padding\n" * 130_000)
    message = _error(path)
    assert str(path) in message
    assert "too large" in message


# -- anchors and merge keys ----------------------------------------------------------------------------------------


def test_anchors_aliases_and_merge_keys_are_read(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        liveness_probe: &probe
          period: 10
          failure_threshold: 30
        readiness_probe:
          <<: *probe
          initial_delay: 5
        tags: {team: &team search}
        environment_variables: {OWNER: *team}
        """
    )
    document = read_document(path)
    assert document.data["readiness_probe"] == {"period": 10, "failure_threshold": 30, "initial_delay": 5}
    assert document.data["environment_variables"] == {"OWNER": "search"}
    assert document.lines[("readiness_probe", "initial_delay")] == 6


def test_bug_merge_key_overridden_by_an_explicit_key_is_not_a_duplicate(yaml_file: YamlFile) -> None:
    # YAML merge keys: an explicit key in the mapping wins over the merged one (yaml.safe_load, which Azure ML's
    # loader uses, reads this as period 5). document.py refuses it as "given twice".
    path = yaml_file(
        """\
        liveness_probe: &probe
          period: 10
          failure_threshold: 30
        readiness_probe:
          <<: *probe
          period: 5
        """
    )
    document = read_document(path)
    assert document.data["readiness_probe"] == {"period": 5, "failure_threshold": 30}


def test_bug_a_self_referencing_alias_is_a_project_file_error(yaml_file: YamlFile) -> None:
    # A recursive structure is valid YAML that no Azure ML schema can hold; it must be refused with the file named,
    # not crash with RecursionError.
    path = yaml_file("name: blue\ntags: &loop\n  again: *loop\n")
    message = _error(path)
    assert str(path) in message


# -- --set ---------------------------------------------------------------------------------------------------------


def test_set_values_are_text_as_az_ml_passes_them_and_are_marked_overridden(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\ninstance_count: 1\n")
    document = read_document(path, ["instance_count=2"])
    assert document.data["instance_count"] == "2"  # the schema check reads it as the number it must be
    assert ("instance_count",) in document.overridden
    assert document.where(("instance_count",)) == f"{path.name} (--set instance_count)"
    assert document.where(("name",)) == f"{path}, line 1"


def test_set_creates_the_missing_mapping(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\n")
    document = read_document(path, ["request_settings.request_timeout_ms=3000"])
    assert document.data["request_settings"] == {"request_timeout_ms": "3000"}
    assert document.where(("request_settings", "request_timeout_ms")) == (
        f"{path.name} (--set request_settings.request_timeout_ms)"
    )


def test_set_into_an_existing_mapping_keeps_its_other_fields(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nrequest_settings:\n  max_queue_wait_ms: 10\n  request_timeout_ms: 1000\n")
    document = read_document(path, ["request_settings.request_timeout_ms=3000"])
    assert document.data["request_settings"] == {"max_queue_wait_ms": 10, "request_timeout_ms": "3000"}


def test_set_a_reference_replaces_an_inline_model(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nmodel:\n  path: ../model/\n")
    document = read_document(path, ["model=azureml:m:2"])
    assert document.data["model"] == "azureml:m:2"
    assert document.where(("model",)) == f"{path.name} (--set model)"


def test_set_text_values(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\n")
    document = read_document(
        path, ["name=x", "endpoint_name=my-endpoint", "description=a=b", "tags.empty=", "app_insights_enabled=true"]
    )
    assert document.data["name"] == "x"
    assert document.data["endpoint_name"] == "my-endpoint"
    assert document.data["description"] == "a=b"  # only the first '=' separates
    assert document.data["tags"] == {"empty": ""}
    assert document.data["app_insights_enabled"] == "true"


def test_set_the_last_one_wins(yaml_file: YamlFile) -> None:
    document = read_document(yaml_file("name: blue\n"), ["instance_count=2", "instance_count=3"])
    assert document.data["instance_count"] == "3"


def test_set_a_list_item_by_index(yaml_file: YamlFile) -> None:
    path = yaml_file("a:\n  b: [1, 2]\n")
    document = read_document(path, ["a.b[0]=5", "a.b[2]=3", "a.b.1=7"])
    assert document.data["a"]["b"] == ["5", "7", "3"]  # [2] is one past the end: appended
    assert {("a", "b", 0), ("a", "b", 1), ("a", "b", 2)} <= document.overridden
    assert document.where(("a", "b", 0)) == f"{path.name} (--set a.b.0)"


def test_set_an_index_creates_a_list(yaml_file: YamlFile) -> None:
    document = read_document(yaml_file("name: blue\n"), ["a.c[0]=x", "a.c[1]=y"])
    assert document.data["a"] == {"c": ["x", "y"]}


def test_set_an_index_past_the_end_is_refused(yaml_file: YamlFile) -> None:
    path = yaml_file("a:\n  b: [1, 2]\n")
    message = _error(path, ("a.b[9]=5",))
    assert "--set 'a.b[9]=5'" in message


def test_set_a_whole_mapping_and_errors_under_it_say_set(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\n")
    document = read_document(path, ["request_settings={request_timeout_ms: 3000, max_queue_wait_ms: 5}"])
    assert document.data["request_settings"] == {"request_timeout_ms": 3000, "max_queue_wait_ms": 5}
    assert document.where(("request_settings", "max_queue_wait_ms")) == f"{path.name} (--set request_settings)"


@pytest.mark.parametrize("override", ["noequals", "=x", " =x", "a..b=1", "a.=1", ".a=1", "a[x]=1"])
def test_set_bad_forms_are_refused(yaml_file: YamlFile, override: str) -> None:
    path = yaml_file("name: blue\n")
    message = _error(path, (override,))
    assert "--set" in message
    assert "instance_count=2" in message or "request_timeout_ms=3000" in message  # an example of the form


def test_set_applies_to_a_document_in_memory(tmp_path: Path) -> None:
    document = Document(tmp_path / "d.yml", {"name": "blue"}, {(): 1, ("name",): 1})
    apply_overrides(document, ["instance_count=4"])
    assert document.data == {"name": "blue", "instance_count": "4"}


def test_bug_set_under_a_reference_string_is_refused_as_az_ml_does(yaml_file: YamlFile) -> None:
    # az ml: "Cannot use '--set' on properties defined by reference strings: --set model.path". document.py
    # instead replaces the reference with {path: ...}, silently turning a registered model into an inline one.
    path = yaml_file("name: blue\nmodel: azureml:m:1\n")
    message = _error(path, ("model.path=../other",))
    assert "model" in message
