"""gpus_of_instance_type: Azure VM sizes to their NVIDIA GPUs, CPU-only sizes to 0, anything else to None."""

from __future__ import annotations

import pytest

from scorehost.azureml.instance_types import gpus_of_instance_type


@pytest.mark.parametrize(
    ("size", "gpus"),
    [
        ("Standard_NC6s_v3", 1),
        ("Standard_NC12s_v3", 2),
        ("Standard_NC24s_v3", 4),
        ("Standard_NC4as_T4_v3", 1),
        ("Standard_NC16as_T4_v3", 1),
        ("Standard_NC64as_T4_v3", 4),
        ("Standard_NC24ads_A100_v4", 1),
        ("Standard_NC48ads_A100_v4", 2),
        ("Standard_NC96ads_A100_v4", 4),
        ("Standard_NC40ads_H100_v5", 1),
        ("Standard_NC80adis_H100_v5", 2),
        ("Standard_ND96asr_v4", 8),
        ("Standard_ND96amsr_A100_v4", 8),
        ("Standard_ND96isr_H100_v5", 8),
        ("Standard_NV12", 2),
        ("Standard_NV48s_v3", 4),
        ("Standard_NV6ads_A10_v5", 1),  # a sixth of an A10: the VM sees one device
        ("Standard_NC6", 1),  # K80, retired: still in older files
    ],
)
def test_gpu_sizes(size: str, gpus: int) -> None:
    assert gpus_of_instance_type(size) == gpus


@pytest.mark.parametrize(
    "written", ["standard_nc24ads_a100_v4", "STANDARD_NC24ADS_A100_V4", "NC24ads_A100_v4", " Standard_NC24ads_A100_v4 "]
)
def test_any_case_with_or_without_the_prefix(written: str) -> None:
    assert gpus_of_instance_type(written) == 1


@pytest.mark.parametrize(
    "size",
    [
        *("Standard_DS3_v2", "Standard_F2s_v2", "Standard_E4s_v3", "Standard_D2as_v4"),
        *("Standard_E64-32s_v3", "standard_b2ms", "Standard_HB120rs_v3", "Standard_M128ms"),
    ],
)
def test_cpu_only_sizes_have_none(size: str) -> None:
    assert gpus_of_instance_type(size) == 0


@pytest.mark.parametrize("size", ["Standard_NV8as_v4", "Standard_ND96isr_MI300X_v5"])
def test_amd_gpus_are_none_that_cuda_sees(size: str) -> None:
    assert gpus_of_instance_type(size) == 0


@pytest.mark.parametrize("name", ["defaultinstancetype", "gpu-instance", "DS3_v2", "Standard_NC7", ""])
def test_other_names_are_unknown(name: str) -> None:
    """A Kubernetes compute's instance types are the cluster's own: nothing is known of them."""
    assert gpus_of_instance_type(name) is None
