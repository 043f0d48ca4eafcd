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
    ``channels_last``: model and input in the channels-last layout, as training uses them by default
    (``TrainConfig.channels_last``)."""
    import timm

    import convat.models  # noqa: F401 - registers the models with timm

    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, in_chans=3, img_size=img_size).to(device)
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    y = torch.randint(0, 3, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def train_step():
        loss = torch.nn.functional.cross_entropy(_logits(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def rate(step) -> float:
        for _ in range(warmup):
            step()
        rates = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            rates.append(batch * steps / (time.perf_counter() - start))
        return statistics.median(rates)

    model.train()
    train = rate(train_step)
    model.eval()
    with torch.no_grad():
        infer = rate(lambda: model(x))
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "device": device, "img_size": img_size, "batch": batch, "params": params,
            "train_samples_per_s": round(train, 1), "infer_samples_per_s": round(infer, 1), "repeats": repeats,
            "steps_per_repeat": steps}


def run(models: tuple[str, ...] = MODELS, img_size: int = 64, steps: int = 4) -> dict:
    """Every model on the CPU (all threads; training also in the channels-last layout, its speed-up beside), then
    on CUDA when available; unknown models are reported, not fatal."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, skipped = [], {}
    for device in devices:
        for name in models:
            try:
                row = throughput(name, device, img_size, steps=steps if device == "cpu" else 20)
                if device == "cpu":  # the layout training uses by default, measured beside the contiguous one
                    cl = throughput(name, device, img_size, steps=steps, channels_last=True)
                    row.update(train_channels_last_samples_per_s=cl["train_samples_per_s"],
                               channels_last_speedup=round(cl["train_samples_per_s"] / row["train_samples_per_s"], 2))
                rows.append(row)
            except Exception as exc:  # noqa: BLE001 - a missing baseline must not hide the others
                skipped[name] = f"{type(exc).__name__}: {exc}"
    return {"rows": rows, "skipped": skipped, "gpu": torch.cuda.get_device_name(0) if len(devices) > 1 else None,
            "cpu_threads": torch.get_num_threads()}
