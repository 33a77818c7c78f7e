"""`azureml.ai.monitoring`: Azure's data collector API, resolved to scorehost's own, in-process with a real writer
and real files (each import test in a fresh interpreter, so this process's sys.modules stays clean)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest
from test_import_aliases import python

from scorehost.collection.reader import iter_lines
from scorehost.collection.session import Collection, activate, current_request, deactivate, new_mark
from scorehost.collection.settings import CollectionRule, CollectionSettings
from scorehost.collection.writer import CollectionWriter
from scorehost.compat.monitoring import Collector
from scorehost.compat.monitoring.context import BasicCorrelationContext


@pytest.fixture
def collecting(tmp_path: Path) -> Iterator[Collection]:
    settings = CollectionSettings(directory=tmp_path, collections={"model_inputs": CollectionRule()}, queue_rows=3)
    collection = Collection(settings, CollectionWriter(settings))
    activate(collection)
    yield collection
    deactivate()
    collection.close()


def written(collection: Collection) -> list[dict[str, object]]:
    assert collection.writer.flush()
    return [orjson.loads(line) for line in iter_lines(collection.settings.directory)]


def test_collect_returns_the_requests_context_and_writes_its_id(collecting: Collection) -> None:
    token = current_request.set(new_mark("req-7"))
    try:
        inputs = Collector(name="model_inputs")
        context = inputs.collect(pd.DataFrame({"a": [1, 2]}))
        assert context.get_id() == "req-7"
        assert inputs.collect(pd.DataFrame({"a": [3]})) is context  # one context per request
        assert inputs.collect([1], BasicCorrelationContext("given")).get_id() == "given"
    finally:
        current_request.reset(token)
    rows = written(collecting)
    assert [row["correlationid"] for row in rows] == ["req-7", "req-7", "given"]
    assert rows[0]["data"] == [{"a": 1}, {"a": 2}]


def test_outside_a_request_each_collect_gets_a_new_context(collecting: Collection) -> None:
    first = Collector(name="model_inputs").collect({"x": 1})
    second = Collector(name="model_inputs").collect({"x": 2})
    assert first.get_id() != second.get_id()
    assert len(first.get_id()) == 36  # a UUID, as Azure's get_context() makes


def test_a_collection_that_is_not_turned_on_writes_nothing_and_says_so(
    collecting: Collection, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[Exception] = []
    Collector(name="model_outputs", on_error=errors.append).collect([1])
    Collector(name="model_outputs").collect([2])
    assert written(collecting) == []
    assert errors == []  # not a failure: the deployment chose not to collect it
    assert caplog.text.count("'model_outputs', but that collection is not turned on") == 1


def test_a_full_queue_drops_the_row_and_tells_on_error_never_run(collecting: Collection) -> None:
    errors: list[Exception] = []
    inputs = Collector(name="model_inputs", on_error=errors.append)
    for n in range(200):  # far faster than the writer drains its queue of 3 (a few times a second)
        inputs.collect([n])
    stats = collecting.writer.stats()
    dropped = sum(count for (_, reason), count in stats.dropped.items() if reason == "queue_full")
    assert dropped >= 100
    assert dropped == len(errors)
    assert "queue is full" in str(errors[0])


def test_with_collection_off_collect_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "scorehost.collection")
    context = Collector(name="inputs_while_off").collect(pd.DataFrame({"a": [1]}))
    assert context.get_id()
    assert "data collection is off" in caplog.text


def test_a_collector_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name='model_inputs'"):
        Collector(name="")


def test_azureml_ai_monitoring_resolves_to_scorehost(tmp_path: Path) -> None:
    result, _ = python(
        """
        from azureml.ai.monitoring import Collector
        from azureml.ai.monitoring.context import BasicCorrelationContext, get_context
        import scorehost.compat.monitoring as ours
        print(json.dumps([Collector is ours.Collector, get_context().get_id() != "",
                          BasicCorrelationContext(id="x").get_id()]))
        """,
        tmp_path,
    )
    assert result == [True, True, "x"]


def test_the_installed_azure_package_does_not_take_the_rows_away(tmp_path: Path) -> None:
    """A real `azureml-ai-monitoring` in the environment posts to an Azure agent: scorehost's answers first."""
    package = tmp_path / "site" / "azureml" / "ai" / "monitoring"
    package.mkdir(parents=True)
    for folder in (package.parent.parent, package.parent):
        (folder / "__init__.py").write_text("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (package / "__init__.py").write_text("class Collector:\n    AZURE = True\n")
    (package / "context.py").write_text("class BasicCorrelationContext:\n    AZURE = True\n")
    result, _ = python(
        """
        import azureml
        from azureml.ai.monitoring import Collector
        from azureml.ai.monitoring.context import BasicCorrelationContext
        print(json.dumps([hasattr(Collector, "AZURE"), hasattr(BasicCorrelationContext, "AZURE"),
                          azureml.__file__ is not None]))
        """,
        tmp_path,
        pythonpath=tmp_path / "site",
    )
    assert result == [False, False, True]


def test_rows_carry_the_time_they_were_collected(collecting: Collection) -> None:
    before = time.time()
    Collector(name="model_inputs").collect({"a": 1})
    (row,) = written(collecting)
    assert str(row["time"]).endswith("Z")
    assert before - 1 <= pd.Timestamp(str(row["time"])).timestamp() <= time.time() + 1


def test_a_frame_changed_after_collect_is_written_as_it_was(collecting: Collection) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    Collector(name="model_inputs").collect(frame)
    frame["prediction"] = [0, 1]  # as scripts do once the model has answered
    (row,) = written(collecting)
    assert row["data"] == [{"a": 1}, {"a": 2}]
