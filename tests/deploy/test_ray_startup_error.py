"""A Ray replica that cannot start carries its error through Serve's status message (`scorehost.ray.startup_error`):
written by the replica, read back by the backend from the text Serve keeps. Pure logic: no Ray."""

from __future__ import annotations

import traceback

import pytest

from scorehost.errors import CorruptModel, InitFailed
from scorehost.ray.startup_error import ReplicaStartFailed, failure_of, startup_error

USER_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/score.py", line 5, in init\n'
    '    raise RuntimeError("model file is corrupt")\n'
    "RuntimeError: model file is corrupt"
)


def serves_message(error: BaseException) -> str:
    """What Serve's status message holds after a replica's constructor raised `error`: its traceback as text, inside
    Ray's own (colours, frames, Serve's wrapper), as seen on Ray 2.60."""
    try:
        raise ReplicaStartFailed.of(error) from None
    except ReplicaStartFailed:
        text = traceback.format_exc()
    return (
        "The deployment failed to start 3 times in a row. This may be due to a problem with its constructor or "
        "initial health check failing. See controller logs for details. Error:\n\x1b[36mray::1:ScoreHost."
        f"initialize_and_get_metadata()\x1b[39m (pid=1, ip=127.0.0.1)\nRuntimeError: {text}\n"
        "\x1b[36mray::1:ScoreHost.initialize_and_get_metadata()\x1b[39m (pid=1)\n  File ...\nRuntimeError: x"
    )


def test_the_scripts_error_comes_back_whole() -> None:
    message = serves_message(
        InitFailed("init() in score.py raised RuntimeError: model file is corrupt", details=USER_TRACEBACK)
    )
    found = startup_error(message)
    assert found is not None
    assert found.headline == "init() in score.py raised RuntimeError: model file is corrupt"
    assert found.traceback == USER_TRACEBACK
    assert failure_of(message) == found


def test_scorehosts_own_refusals_have_no_traceback_and_bugs_have_theirs() -> None:
    refused = startup_error(serves_message(CorruptModel("labels:1 labels.json arrived damaged on node n1")))
    assert refused is not None
    assert (refused.headline, refused.traceback) == ("labels:1 labels.json arrived damaged on node n1", "")
    try:
        {}["missing"]
    except KeyError as error:
        bug = startup_error(serves_message(error))
    assert bug is not None
    assert bug.headline == "the replica failed: KeyError: 'missing'"
    assert 'File "' in bug.traceback
    assert bug.traceback.endswith("KeyError: 'missing'")


@pytest.mark.parametrize(
    "message", ["", "Failed to update the deployments ['ScoreHost'].", "scorehost-startup-error: {"]
)
def test_a_message_without_the_replicas_error(message: str) -> None:
    assert startup_error(message) is None


def test_serves_own_reasons_are_told_without_rays_colours() -> None:
    found = failure_of("Exception when allocating replica:\n\x1b[36mray::x\x1b[39m\nRuntimeEnvSetupError: uv failed")
    assert found.headline == "RuntimeEnvSetupError: uv failed"
    assert "\x1b" not in found.traceback
    assert found.traceback.startswith("Exception when allocating replica:")
