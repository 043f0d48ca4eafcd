"""Training and inference throughput (samples/s) per model, side by side, on the CPU and on a GPU if present."""

from __future__ import annotations

import statistics
import time

import torch

MODELS = ("convat_tiny", "convat_small", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me")


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def throughput(name: str, device: str = "cpu", img_size: int = 64, batch: int = 32, steps: int = 4,
               warmup: int = 1, repeats: int = 3, channels_last: bool = False) -> dict:
    """Samples/s of training steps (forward, backward, AdamW) and of inference, batch ``batch``, random input: the
    median of ``repeats`` timings of ``steps`` steps each, after ``warmup`` steps (a single 4-step timing read
    convat_tiny at 312 samples/s where 10-step timings in fresh processes read 700-780 on the same machine).

    ``channels_last``: training is also timed with model and input in the channels-last layout (the layout
    training uses by default, ``TrainConfig.channels_last``), interleaved with the contiguous timings (one of
    each per repeat, from the same initial weights), adding its samples/s and the median of the per-repeat
    ratios; inference is timed in the contiguous layout."""
    import timm

    import convat.models  # noqa: F401 - registers the models with timm

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def setup(last: bool):
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=3, in_chans=3, img_size=img_size).to(device)
        x = torch.randn(batch, 3, img_size, img_size, device=device)
        y = torch.randint(0, 3, (batch,), device=device)
        if last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def train_step():
            loss = torch.nn.functional.cross_entropy(_logits(model(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return model, x, train_step

    def block(step) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return batch * steps / (time.perf_counter() - start)

    layouts = {False: setup(False), **({True: setup(True)} if channels_last else {})}
    for model, _, step in layouts.values():
        model.train()
        for _ in range(warmup):
            step()
    rates: dict[bool, list[float]] = {layout: [] for layout in layouts}
    for _ in range(repeats):
        for layout, (_, _, step) in layouts.items():
            rates[layout].append(block(step))
    model, x, _ = layouts[False]
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        infer = statistics.median(block(lambda: model(x)) for _ in range(repeats))
    row = {"model": name, "device": device, "img_size": img_size, "batch": batch,
           "params": sum(p.numel() for p in model.parameters()),
           "train_samples_per_s": round(statistics.median(rates[False]), 1), "infer_samples_per_s": round(infer, 1),
           "repeats": repeats, "steps_per_repeat": steps}
    if channels_last:
        ratios = [c / p for c, p in zip(rates[True], rates[False], strict=True)]
        row.update(train_channels_last_samples_per_s=round(statistics.median(rates[True]), 1),
                   channels_last_speedup=round(statistics.median(ratios), 2))
    return row


def run(models: tuple[str, ...] = MODELS, img_size: int = 64, steps: int = 4, repeats: int = 7) -> dict:
    """Every model on the CPU (all threads; training also in the channels-last layout, its speed-up beside), then
    on CUDA when available; unknown models are reported, not fatal."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, skipped = [], {}
    for device in devices:
        for name in models:
            try:
                # on the CPU, the layout training uses by default is timed beside the contiguous one
                rows.append(throughput(name, device, img_size, steps=steps if device == "cpu" else 20,
                                       repeats=repeats if device == "cpu" else 3, channels_last=device == "cpu"))
            except Exception as exc:  # noqa: BLE001 - a missing baseline must not hide the others
                skipped[name] = f"{type(exc).__name__}: {exc}"
    return {"rows": rows, "skipped": skipped, "gpu": torch.cuda.get_device_name(0) if len(devices) > 1 else None,
            "cpu_threads": torch.get_num_threads()}
