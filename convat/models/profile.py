"""Size and cost of the registered models: parameters, FLOPs and CPU latency per clip."""

from __future__ import annotations

import time
import warnings

import pandas as pd
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import convat.models  # noqa: F401  (registers the models with timm)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: torch.nn.Module, img_size: int, in_chans: int = 3) -> int:
    """Floating-point operations of one forward pass on one clip (a multiply-add counts as 2)."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_chans, img_size, img_size))
    return int(counter.get_total_flops())


def cpu_latency_ms(model: torch.nn.Module, img_size: int, in_chans: int = 3, repeats: int = 20,
                   threads: int = 1) -> float:
    """Median wall-clock milliseconds of one single-clip forward pass on the CPU with ``threads`` threads."""
    model = model.eval().cpu()
    x = torch.zeros(1, in_chans, img_size, img_size)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = []
        with torch.no_grad():
            for i in range(repeats + 3):
                start = time.perf_counter()
                model(x)
                if i >= 3:  # the first passes allocate and warm caches
                    times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def model_table(names: list[str] | tuple[str, ...], img_size: int = 64, num_classes: int = 3, in_chans: int = 3,
                latency: bool = True, repeats: int = 20, **model_kwargs) -> pd.DataFrame:
    """One row per model: ``params``, ``MFLOPs`` (forward, one clip) and ``cpu_ms`` (median, one thread).

    ``latency=False`` skips the timing (which depends on the machine and its load) where only sizes matter.
    """
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                                  **model_kwargs)
        row = {"model": name, "params": count_parameters(model),
               "MFLOPs": count_flops(model, img_size, in_chans) / 1e6}
        if latency:
            row["cpu_ms"] = cpu_latency_ms(model, img_size, in_chans, repeats=repeats)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")





def stage_table(model: torch.nn.Module, img_size: int, in_chans: int = 3, batch: int = 1) -> pd.DataFrame:
    """Output shape and parameters of each stage of one forward pass, in execution order.

    The stages are ``model.stages()`` (an ordered ``{name: module}``, as :class:`~convat.models.ConVAT`
    provides) or else the model's direct children. Shapes include the batch dimension.
    """
    stages = model.stages() if hasattr(model, "stages") else dict(model.named_children())
    rows: list[dict] = [{"stage": "input", "output shape": (batch, in_chans, img_size, img_size), "params": 0}]
    handles = []

    def hook(name: str, module: torch.nn.Module):
        def record(_module, _inputs, output):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            rows.append({"stage": name, "output shape": shape, "params": count_parameters(module)})

        return record

    for name, module in stages.items():
        handles.append(module.register_forward_hook(hook(name, module)))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch, in_chans, img_size, img_size))
    finally:
        for handle in handles:
            handle.remove()
    return pd.DataFrame(rows).set_index("stage")
__all__ = ["count_parameters", "count_flops", "cpu_latency_ms", "model_table", "stage_table"]
