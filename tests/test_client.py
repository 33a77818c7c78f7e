"""scorehost.Client and AsyncClient against a real control-plane API server: calls and error mapping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _control_plane import api_server

from scorehost.client import AsyncClient, Client, ControlPlaneAddress, Unauthorized
from scorehost.errors import InvalidSpec, ResourceExists, ServiceUnavailable, UnknownResource


def _code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    return folder


def test_the_client_drives_endpoints_deployments_and_traffic(tmp_path: Path) -> None:
    code = _code(tmp_path)
    with api_server(tmp_path) as (address, deployer), Client(address=address) as client:
        created = client.create_endpoint("mnist", description="digits")
        assert created["scoring_uri"].endswith("/endpoints/mnist/score")
        keys = client.keys("mnist")
        assert client.regenerate_key("mnist", "primary")["secondary"] == keys["secondary"]
        deployment = client.create_deployment(
            "mnist", "blue", script="score.py", code_dir=code, models=["m:1"], instances=2
        )
        assert (deployment["generation"], deployment["instances"]) == (1, 2)
        client.create_deployment("mnist", "green", script=code / "score.py", code_dir=code)
        assert client.update_deployment("mnist", "blue", instances=3)["generation"] == 2
        assert client.set_traffic("mnist", {"blue": 80, "green": 20})["traffic"] == {"blue": 80, "green": 20}
        assert [d["name"] for d in client.list_deployments("mnist")] == ["blue", "green"]
        assert client.get_deployment("mnist", "green")["status"] == {"state": "ready"}
        assert client.logs("mnist", "blue", lines=2) == "line 0\nline 1\n"
        assert list(client.follow_logs("mnist", "blue", lines=2)) == ["line 0", "line 1", "followed"]
        assert [e["name"] for e in client.list_endpoints()] == ["mnist"]
        client.set_traffic("mnist", {"blue": 100, "green": 0})
        client.delete_deployment("mnist", "green")
        client.delete_endpoint("mnist")
        assert client.list_endpoints() == []
    assert ("deploy", "blue@2") in deployer.calls


def test_api_errors_become_scorehost_errors_with_the_server_message(tmp_path: Path) -> None:
    with api_server(tmp_path) as (address, _), Client(address=address) as client:
        client.create_endpoint("mnist")
        with pytest.raises(ResourceExists, match="endpoint 'mnist' exists already"):
            client.create_endpoint("mnist")
        with pytest.raises(UnknownResource, match=r"no endpoint named 'other' \(endpoints: mnist\)"):
            client.get_endpoint("other")
        with pytest.raises(InvalidSpec, match="traffic must sum to 100"):
            client.set_traffic("mnist", {"blue": 50})
        with pytest.raises(InvalidSpec, match="is not a valid endpoint name"):
            client.create_endpoint("x")
    wrong = ControlPlaneAddress(address.api, address.gateway, "wrong-token")
    with api_server(tmp_path) as (served, _):
        no_token = ControlPlaneAddress(served.api, served.gateway, "no")
        with Client(address=no_token) as client, pytest.raises(Unauthorized, match="control-plane token"):
            client.list_endpoints()
    with Client(address=wrong) as client, pytest.raises(ServiceUnavailable, match="does not answer"):
        client.list_endpoints()  # that server is gone


def test_no_control_plane_running_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="start it with `scorehost controlplane start`"):
        Client(tmp_path / "empty-workspace")


def test_the_async_client(tmp_path: Path) -> None:
    async def drive(address: ControlPlaneAddress) -> list[str]:
        async with AsyncClient(address=address) as client:
            keys = await client.keys("mnist")
            endpoint = await client.get_endpoint("mnist")
            with pytest.raises(UnknownResource):
                await client.get_deployment("mnist", "blue")
            return [keys["primary"], endpoint["name"], *(e["name"] for e in await client.list_endpoints())]

    with api_server(tmp_path) as (address, _):
        with Client(address=address) as client:
            client.create_endpoint("mnist")
            primary = client.keys("mnist")["primary"]
        assert asyncio.run(drive(address)) == [primary, "mnist", "mnist"]
