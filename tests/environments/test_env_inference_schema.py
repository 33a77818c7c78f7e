"""inference-schema at any release an Azure ML environment pins: old ones (1.3, 1.5) pin wrapt 1.12, which cannot
be imported on Python 3.11, and lack arguments and methods that newer releases have; a typed script still serves,
with its Swagger document, in an environment that pins them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.environments import EnvironmentSpec, ensure_environment

SCRIPT = Path(__file__).parents[1] / "scripts" / "typed_numpy_sum.py"

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("pin", ["inference-schema==1.3.0", "inference-schema[numpy-support]==1.5.1"])
def test_an_old_inference_schema_release_serves_a_typed_script(pin: str, tmp_path: Path) -> None:
    from conftest import kill, start_server, wait_ready

    built = ensure_environment(EnvironmentSpec.from_requirements([pin, "numpy"]), tmp_path / "home")
    assert built.packages["inference-schema"] == pin.rpartition("==")[2]
    server = wait_ready(start_server([str(SCRIPT)], python=built.python))
    try:
        with server.client() as client:
            assert client.post("/score", json={"data": [[1, 2], [3, 4]]}).json() == {"sum": [3.0, 7.0]}
            refused = client.post("/score", json={"data": "x"})
            assert refused.status_code == 400
            assert "'data'" in refused.json()["message"]
            swagger = client.get("/swagger.json")
            assert swagger.status_code == 200
            assert swagger.json()["definitions"]["ServiceInput"]["example"] == {"data": [[1.0, 2.0]]}
    finally:
        kill(server)
    assert not any("worker crashed" in line for line in server.lines)
