"""`archspec bench`: forward and forward+backward throughput and latency on random inputs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from archspec.errors import ArchspecError
from archspec.train.losses import as_dict
from archspec.train.runtime import Dist, autocast, pick_device
from archspec.train.setup import model_bytes, plan as make_plan
from archspec.train.threads import threads_for


def _measure(step, device: torch.device, seconds: float) -> tuple[int, float]:
    for _ in range(2):  # warm-up (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    count, began = 0, time.perf_counter()
    while True:
        step()
        count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - began
        if elapsed >= seconds or count >= 1000:
            return count, elapsed


def run_bench(spec: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]], batch: int, device: str,
              amp: str, compile_: bool, channels_last: bool, seconds: float,
              budget: Callable[[Any, list[tuple[str, int]]], None] | None = None, threads: int = 0) -> list[dict[str, Any]]:
    """Rows of images/s and latency. `budget(plan, parts)` may refuse the static estimate of a
    forward+backward pass at `batch` before anything is allocated; running out of memory anyway
    is reported as such. `threads`: torch's intra-op threads, 0 for archspec.train.threads' choice."""
    if amp not in ("off", "bf16", "fp16"):
        raise ArchspecError(f"--amp must be off, bf16 or fp16, not '{amp}'")
    torch.set_num_threads(threads_for(threads))
    spec_plan = make_plan(spec, params, inputs)
    if budget is not None:
        budget(spec_plan, [("forward and backward", model_bytes(spec_plan, batch, training=True))])
    try:
        return _bench_rows(spec_plan, batch, device, amp, compile_, channels_last, seconds)
    except (torch.OutOfMemoryError, MemoryError) as err:
        raise ArchspecError(f"bench {spec} at batch {batch:,} ran out of memory ({str(err).splitlines()[0][:160]}); "
                            "use a smaller --batch or --input") from None
    except RuntimeError as err:
        if "alloc" not in str(err).lower():
            raise
        raise ArchspecError(f"bench {spec} at batch {batch:,} could not allocate its tensors "
                            f"({str(err).splitlines()[0][:160]}); use a smaller --batch or --input") from None


def _bench_rows(spec_plan, batch: int, device: str, amp: str, compile_: bool, channels_last: bool,
                seconds: float) -> list[dict[str, Any]]:
    target = pick_device(device, Dist())
    model = spec_plan.build().to(target)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    feed = {name: torch.randn((batch, *shape), device=target).contiguous(memory_format=memory if len(shape) == 3 else torch.contiguous_format)
            for name, shape in spec_plan.shapes.items()}
    rows = []
    variants = [("eager", model)] + ([("compiled", torch.compile(model))] if compile_ else [])
    for mode, net in variants:
        def forward() -> None:
            with torch.no_grad(), autocast(target, amp):
                net(**feed)

        def forward_backward() -> None:
            with autocast(target, amp):
                outputs = as_dict(net(**feed), spec_plan)
                loss = sum(o.float().mean() for o in outputs.values())
            loss.backward()

        for name, step, train_mode in (("forward", forward, False), ("forward+backward", forward_backward, True)):
            net.train(train_mode)
            count, elapsed = _measure(step, target, seconds)
            rows.append({"mode": mode, "pass": name, "images_per_s": count * batch / elapsed,
                         "latency_ms": 1000 * elapsed / count, "device": str(target),
                         "threads": torch.get_num_threads()})
    return rows
