"""Azure VM sizes (a deployment's `instance_type`) and the NVIDIA GPUs each has, from Azure's size tables.

A size's name is matched without regard to case, with or without its `Standard_` prefix. Sizes that share one GPU
between VMs (NVadsA10 v5) show the VM one device: they count 1. AMD GPU sizes (NVv4, NGads V620, ND MI300X v5) count
0: nothing that CUDA, NVML or `nvidia.com/gpu` knows.
"""

from __future__ import annotations

import re

__all__ = ["gpus_of_instance_type"]

_GPUS = {
    # NC (K80), NCv2 (P100), NCv3 (V100): retired or retiring, still in older files
    **{"nc6": 1, "nc12": 2, "nc24": 4, "nc24r": 4},
    **{"nc6s_v2": 1, "nc12s_v2": 2, "nc24s_v2": 4, "nc24rs_v2": 4},
    **{"nc6s_v3": 1, "nc12s_v3": 2, "nc24s_v3": 4, "nc24rs_v3": 4},
    # NCasT4_v3 (T4)
    **{"nc4as_t4_v3": 1, "nc8as_t4_v3": 1, "nc16as_t4_v3": 1, "nc64as_t4_v3": 4},
    # NC A100 v4, NC H100 v5, NCC H100 v5 (confidential)
    **{"nc24ads_a100_v4": 1, "nc48ads_a100_v4": 2, "nc96ads_a100_v4": 4},
    **{"nc40ads_h100_v5": 1, "nc80adis_h100_v5": 2, "ncc40ads_h100_v5": 1},
    # ND (P40), NDv2 (V100), ND A100 v4, NDm A100 v4, ND H100 v5, ND H200 v5, ND GB200 v6
    **{"nd6s": 1, "nd12s": 2, "nd24s": 4, "nd24rs": 4, "nd40rs_v2": 8},
    **{"nd96asr_v4": 8, "nd96amsr_a100_v4": 8},
    **{"nd96isr_h100_v5": 8, "nd96isr_h200_v5": 8, "nd128isr_ndr_gb200_v6": 4},
    # NV (M60), NVv3 (M60), NVadsA10 v5 (A10, shared below NV36)
    **{"nv6": 1, "nv12": 2, "nv24": 4, "nv12s_v3": 1, "nv24s_v3": 2, "nv48s_v3": 4},
    **{"nv6ads_a10_v5": 1, "nv12ads_a10_v5": 1, "nv18ads_a10_v5": 1, "nv36ads_a10_v5": 1},
    **{"nv36adms_a10_v5": 1, "nv72ads_a10_v5": 2},
    # AMD GPUs: none that CUDA sees
    **{"nv4as_v4": 0, "nv8as_v4": 0, "nv16as_v4": 0, "nv32as_v4": 0, "nd96isr_mi300x_v5": 0},
    **{"ng8ads_v620_v1": 0, "ng16ads_v620_v1": 0, "ng32ads_v620_v1": 0, "ng32adms_v620_v1": 0},
}
# CPU-only families (A, B, D, DC, E, F, FX, G, H, HB, HC, HX, L, M, ...): a family letter or three, then the vCPUs
# (`Standard_DS3_v2`, `Standard_F2s_v2`, `Standard_E64-32s_v3`, `Standard_HB120rs_v3`). Only with the prefix: a bare
# `d4` could be anything, such as a Kubernetes instance type's name.
_CPU_ONLY = re.compile(r"standard_[abdefghlm][a-z]{0,2}[0-9]+(-[0-9]+)?[a-z]*(_[a-z0-9]+)*")


def gpus_of_instance_type(name: str) -> int | None:
    """The NVIDIA GPUs of the Azure VM size `name` (`Standard_NC24ads_A100_v4` -> 1); 0 for a CPU-only size; None
    for a name that is not a known size (a Kubernetes compute's instance type, say)."""
    folded = name.strip().lower()
    found = _GPUS.get(folded.removeprefix("standard_"))
    if found is not None:
        return found
    return 0 if _CPU_ONLY.fullmatch(folded) else None
