"""The devices the latency estimate knows (archspec.passes.latency): peak FLOP/s and memory bandwidth.

The GPUs carry NVIDIA's published figures (dense, no sparsity) with the document they come from.
`cpu` has no published figure: `archspec.lower.calibrate` measures this machine once (matmul and
memcpy, about two seconds) and caches the result here as JSON, under $XDG_CACHE_HOME/archspec
(~/.cache/archspec by default). This module imports no torch; it reads and writes that cache.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from archspec.errors import check_choice
from archspec.files import write_atomic

TERA = 1e12


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops: dict[str, float]  # FLOP/s by dtype: fp32, bf16, fp16 (and tf32 where there is one)
    bandwidth: float  # bytes/s between memory and the compute units
    source: str
    # fixed time per op (launch or dispatch), seconds: measured for `cpu`, 0 where nothing is published
    overhead: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)
    # measured on a CPU, nothing published for the GPUs (archspec.lower.calibrate), by kernel kind
    # (archspec.ops.registry.KERNELS): the fixed cost per op where it is not `overhead`, the work
    # rate where it is not the peak (pooling windows), and the rate at which a convolution's weights
    # are re-laid out for the kernel on every eager call (bytes/s; None: they are used as they are)
    kernel_overheads: dict[str, float] = field(default_factory=dict)
    kernel_rates: dict[str, float] = field(default_factory=dict)
    relayout_bandwidth: float | None = None
    # FLOP/s of a matrix product by its smallest dimension ("8": a 512x512 by 512x8 product), measured
    gemm_rates: dict[str, float] = field(default_factory=dict)

    def peak(self, dtype: str) -> float:
        return self.peak_flops.get(dtype) or self.peak_flops["fp32"]

    def fixed_cost(self, kernel: str) -> float:
        return self.kernel_overheads.get(kernel, self.overhead)

    def rate(self, kernel: str, dtype: str) -> float:
        """Work per second of this kind of kernel: its measured rate, else the peak."""
        return self.kernel_rates.get(kernel) or self.peak(dtype)

    def gemm_rate(self, smallest: int) -> float | None:
        """The measured rate of a product whose smallest dimension is `smallest`, interpolated on
        log scales between the measured sizes (None: none measured, or past the largest)."""
        points = sorted((int(size), rate) for size, rate in self.gemm_rates.items())
        if not points or smallest >= points[-1][0]:
            return None
        if smallest <= points[0][0]:
            return points[0][1]
        for (a, rate_a), (b, rate_b) in zip(points, points[1:]):
            if a <= smallest <= b:
                w = math.log(smallest / a) / math.log(b / a)
                return math.exp((1 - w) * math.log(rate_a) + w * math.log(rate_b))
        return None

    def ridge(self, dtype: str) -> float:
        """FLOPs per byte above which a layer is compute-bound on this device."""
        return self.peak(dtype) / self.bandwidth


# fp32 is the plain-FP32 figure (CUDA cores); tf32 is listed apart because PyTorch uses it for convs
# by default (torch.backends.cudnn.allow_tf32) but not for matmuls. BF16 and FP16 are tensor-core dense.
PUBLISHED: dict[str, Device] = {
    "a100": Device(
        "a100", {"fp32": 19.5 * TERA, "tf32": 156 * TERA, "bf16": 312 * TERA, "fp16": 312 * TERA}, 2.039e12,
        "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM: FP32 19.5 TFLOPS, TF32 156, BF16/FP16 312 dense; "
        "HBM2e 2,039 GB/s), https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
        "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    "h100": Device(
        "h100", {"fp32": 67 * TERA, "tf32": 494.7 * TERA, "bf16": 989.4 * TERA, "fp16": 989.4 * TERA}, 3.35e12,
        "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: FP32 67 TFLOPS, TF32 494.7, BF16/FP16 989.4 dense, "
        "i.e. half the with-sparsity figures; HBM3 3.35 TB/s), https://resources.nvidia.com/en-us-tensor-core/"
        "nvidia-tensor-core-gpu-datasheet"),
    "h200": Device(
        "h200", {"fp32": 67 * TERA, "tf32": 494.7 * TERA, "bf16": 989.4 * TERA, "fp16": 989.4 * TERA}, 4.8e12,
        "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM: FP32 67 TFLOPS, TF32 494.7, BF16/FP16 989.4 dense, "
        "half the with-sparsity figures; HBM3e 4.8 TB/s), https://www.nvidia.com/en-us/data-center/h200/"),
}
DEVICE_NAMES = ("cpu", *PUBLISHED)
CACHE_VERSION = 4  # 3: fixed costs and rates per kernel kind, conv weights' re-layout; 4: rates by GEMM size


def check_device(name: str) -> str:
    return check_choice("--device", name, DEVICE_NAMES)


def cache_path() -> Path:
    """Where the calibrated `cpu` figures live (XDG base directory spec)."""
    from archspec.cache import cache_home

    return cache_home() / "cpu-device.json"


def read_cached(path: Path, threads: int) -> Device | None:
    """The cached `cpu` device measured with this many threads; None when there is none (or it is
    unreadable, of another version or thread count: then it is measured again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("threads") != threads:
            return None
        return Device(**data["device"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_cached(path: Path, device: Device, threads: int) -> None:
    text = json.dumps({"version": CACHE_VERSION, "threads": threads, "device": asdict(device)}, indent=1)
    write_atomic(path, text + "\n")  # a reader never sees half a file
