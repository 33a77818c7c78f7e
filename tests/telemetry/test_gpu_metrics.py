"""The GPU series of `/metrics`. In-process: what a scrape makes of NVML's readings and of the workers' device
records (indices and UUIDs, utilization not supported, nothing without NVML or without a worker on a GPU).
Real servers: a CPU-only machine exports none, and a server seeing a stand-in NVML (tests/scripts/fake_nvml on
PYTHONPATH) exports each held GPU and which worker holds it, as the Grafana dashboard's GPU row queries them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _fake_nvml import FAKE_NVML, GIB, fake_gpu, fake_nvml
from conftest import Server, served
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from scorehost.devices.nvml import GpuReading
from scorehost.http.metrics import ServerMetrics
from scorehost.telemetry.gpu_metrics import device_ids, exposition_with_gpus, record_worker_devices

READINGS = [
    GpuReading(0, "GPU-aaaa-0000", "NVIDIA A", 3 * GIB, 80 * GIB, 0.25, (101,)),
    GpuReading(1, "GPU-bbbb-1111", "NVIDIA B", 5 * GIB, 80 * GIB, None, ()),
    GpuReading(2, "GPU-bbbc-2222", "NVIDIA C", 0, 40 * GIB, 0.0, ()),
]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "scorehost-dashboard.json"


class Records:
    """The workers' device records as the multiprocess files hold them: (device id, worker) pairs."""

    def __init__(self, *held: tuple[str, str]) -> None:
        self.held = held

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("scorehost_gpu_worker_device", "records", labels=["device", "worker"])
        for device, worker in self.held:
            family.add_metric([device, worker], 1)
        yield family
        yield GaugeMetricFamily("scorehost_other", "passes through", value=7)


def samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gpu_samples(text: str) -> Samples:
    return {key: value for key, value in samples(text).items() if key[0].startswith("scorehost_gpu_")}


def labelled(name: str, gpu: str, **more: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    reading = next(r for r in READINGS if str(r.index) == gpu)
    labels = {"gpu": gpu, "uuid": reading.uuid, "name": reading.name, **more}
    return name, tuple(sorted(labels.items()))


def scrape_records(*held: tuple[str, str], readings: list[GpuReading] | None = READINGS) -> str:
    registry = CollectorRegistry()
    registry.register(Records(*held))
    return exposition_with_gpus(registry, False, reader=lambda: readings).decode()


def test_cuda_visible_devices_entries_as_cuda_reads_them() -> None:
    assert device_ids("0,1") == ["0", "1"]
    assert device_ids(" GPU-aaaa , 2") == ["GPU-aaaa", "2"]
    assert device_ids("") == []
    assert device_ids("-1") == []
    assert device_ids("1,-1,2") == ["1"]  # CUDA stops at the first invalid entry
    assert device_ids("0,,1") == ["0"]


def test_each_held_gpu_and_its_workers_by_index_or_uuid() -> None:
    text = scrape_records(("0", "1"), ("GPU-bbbb-1111", "2"), ("GPU-aaaa", "3"))  # a UUID, and a prefix of one
    assert gpu_samples(text) == {
        labelled("scorehost_gpu_memory_used_bytes", "0"): 3 * GIB,
        labelled("scorehost_gpu_memory_total_bytes", "0"): 80 * GIB,
        labelled("scorehost_gpu_utilization_ratio", "0"): 0.25,
        labelled("scorehost_gpu_worker_info", "0", worker="1"): 1,
        labelled("scorehost_gpu_worker_info", "0", worker="3"): 1,
        labelled("scorehost_gpu_memory_used_bytes", "1"): 5 * GIB,
        labelled("scorehost_gpu_memory_total_bytes", "1"): 80 * GIB,
        # GPU 1 cannot say its utilization: no series rather than a false 0. GPU 2 is no worker's: not exported.
        labelled("scorehost_gpu_worker_info", "1", worker="2"): 1,
    }
    assert "scorehost_gpu_worker_device" not in text
    assert ("scorehost_other", ()) in samples(text)  # the server's other metrics pass through


def test_ids_that_name_no_gpu_nvml_read_are_left_out() -> None:
    # "GPU-bbb" is a prefix of two UUIDs (CUDA refuses it); 7 and the MIG instance are not among the readings.
    text = scrape_records(("GPU-bbb", "1"), ("7", "2"), ("MIG-aaaa-0000/1/0", "3"), ("2", "4"))
    assert {(name, dict(labels)["gpu"]) for name, labels in gpu_samples(text)} == {
        ("scorehost_gpu_memory_used_bytes", "2"),
        ("scorehost_gpu_memory_total_bytes", "2"),
        ("scorehost_gpu_utilization_ratio", "2"),
        ("scorehost_gpu_worker_info", "2"),
    }


def test_nothing_without_nvml_or_without_a_worker_on_a_gpu() -> None:
    assert "scorehost_gpu_" not in scrape_records(("0", "1"), readings=None)  # no NVML: not even the records
    assert "scorehost_gpu_" not in scrape_records(("0", "1"), readings=[])  # NVML sees no GPU
    calls: list[int] = []

    def reader() -> list[GpuReading]:
        calls.append(1)
        return READINGS

    registry = CollectorRegistry()
    registry.register(Records())
    assert "scorehost_gpu_" not in exposition_with_gpus(registry, False, reader).decode()
    assert calls == []  # no worker holds a GPU: NVML is not even opened


def test_a_worker_records_the_devices_its_environment_gives_it() -> None:
    registry = CollectorRegistry()
    record_worker_devices({"SCOREHOST_WORKER_INDEX": "2", "CUDA_VISIBLE_DEVICES": "1,GPU-aaaa-0000"}, registry)
    assert gpu_samples(exposition_with_gpus(registry, False, lambda: READINGS).decode()) == {
        labelled("scorehost_gpu_memory_used_bytes", "0"): 3 * GIB,
        labelled("scorehost_gpu_memory_total_bytes", "0"): 80 * GIB,
        labelled("scorehost_gpu_utilization_ratio", "0"): 0.25,
        labelled("scorehost_gpu_worker_info", "0", worker="2"): 1,
        labelled("scorehost_gpu_memory_used_bytes", "1"): 5 * GIB,
        labelled("scorehost_gpu_memory_total_bytes", "1"): 80 * GIB,
        labelled("scorehost_gpu_worker_info", "1", worker="2"): 1,
    }
    for environ in (
        {"CUDA_VISIBLE_DEVICES": "0"},  # not a placed worker (the supervisor, a Ray replica)
        {"SCOREHOST_WORKER_INDEX": "1", "CUDA_VISIBLE_DEVICES": ""},  # a worker on the CPU (--devices none)
        {"SCOREHOST_WORKER_INDEX": "1"},
    ):
        registry = CollectorRegistry()
        record_worker_devices(environ, registry)
        assert list(registry.collect()) == []


def test_server_metrics_of_a_placed_worker_name_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """ServerMetrics() made in a worker reads its environment; a scrape reads NVML (here the stand-in)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("SCOREHOST_WORKER_INDEX", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-zzzz")
    fake_nvml(monkeypatch, [fake_gpu("GPU-zzzz", name="NVIDIA Z")])
    text = ServerMetrics().exposition().decode()
    labels = (("gpu", "0"), ("name", "NVIDIA Z"), ("uuid", "GPU-zzzz"), ("worker", "1"))
    assert samples(text)[("scorehost_gpu_worker_info", labels)] == 1
    assert "scorehost_worker_restarts_total" in text


# --- Real servers ---------------------------------------------------------------------------------------------

FAKE_GPUS = [
    {"uuid": "GPU-aaaa-0000", "name": "NVIDIA Fake A", "used": 3 * GIB, "total": 80 * GIB, "utilization": 37},
    {"uuid": "GPU-bbbb-1111", "name": "NVIDIA Fake B", "used": 5 * GIB, "total": 80 * GIB, "utilization": None},
    {"uuid": "GPU-cccc-2222", "name": "NVIDIA Fake C", "used": 0, "total": 40 * GIB, "utilization": 0},
]


def scrape_text(server: Server) -> str:
    reply = httpx.get(server.url + "/metrics", timeout=10)
    assert reply.status_code == 200
    return reply.text


@pytest.fixture(scope="module")
def fake_gpu_server() -> Iterator[Server]:
    """Two workers placed on GPU 0 (by index) and GPU 1 (by UUID) of three that the stand-in NVML reports."""
    env = {"PYTHONPATH": str(FAKE_NVML), "FAKE_NVML_GPUS": json.dumps(FAKE_GPUS)}
    with served("echo.py", "--workers", "2", "--devices", "0,GPU-bbbb-1111", env=env) as server:
        server.wait_for_log(r"ready: 2 worker\(s\) serving")  # both have recorded their GPU
        yield server


def test_without_nvml_a_server_exports_no_gpu_series() -> None:
    # Workers placed on GPUs 0 and 1 (--devices checks nothing here: neither NVML nor nvidia-smi answers).
    with served("echo.py", "--workers", "2", "--devices", "0,1") as server:
        server.wait_for_log(r"ready: 2 worker\(s\) serving")  # both have recorded their devices
        text = scrape_text(server)
    assert "scorehost_init_duration_seconds" in text
    assert "scorehost_gpu_" not in text


def test_a_server_on_gpus_exports_each_held_gpu_and_its_worker(fake_gpu_server: Server) -> None:
    found = gpu_samples(scrape_text(fake_gpu_server))
    a = (("gpu", "0"), ("name", "NVIDIA Fake A"), ("uuid", "GPU-aaaa-0000"))
    b = (("gpu", "1"), ("name", "NVIDIA Fake B"), ("uuid", "GPU-bbbb-1111"))
    assert found == {
        ("scorehost_gpu_memory_used_bytes", a): 3 * GIB,
        ("scorehost_gpu_memory_total_bytes", a): 80 * GIB,
        ("scorehost_gpu_utilization_ratio", a): 0.37,
        ("scorehost_gpu_worker_info", (*a, ("worker", "1"))): 1,
        ("scorehost_gpu_memory_used_bytes", b): 5 * GIB,
        ("scorehost_gpu_memory_total_bytes", b): 80 * GIB,
        ("scorehost_gpu_worker_info", (*b, ("worker", "2"))): 1,
    }


def test_the_dashboards_gpu_row_queries_metrics_a_gpu_server_exports(fake_gpu_server: Server) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (row,) = [panel for panel in dashboard["panels"] if panel["type"] == "row" and panel["title"] == "GPU"]
    queried = {
        name
        for panel in row["panels"]
        for target in panel["targets"]
        for name in re.findall(r"scorehost_[a-z_]+", target["expr"])
    }
    exported = {family.name for family in text_string_to_metric_families(scrape_text(fake_gpu_server))}
    assert queried <= exported, queried - exported
    assert {name for name in queried if name.startswith("scorehost_gpu_")} == {
        "scorehost_gpu_memory_used_bytes",
        "scorehost_gpu_memory_total_bytes",
        "scorehost_gpu_utilization_ratio",
        "scorehost_gpu_worker_info",
    }
