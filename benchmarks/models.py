"""Training and inference throughput (samples/s) per model, side by side, on the CPU and on a GPU if present."""

from __future__ import annotations

import time

import torch

MODELS = ("convat_tiny", "convat_small", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me")


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def throughput(name: str, device: str = "cpu", img_size: int = 64, batch: int = 32, steps: int = 4,
               warmup: int = 1) -> dict:
    """Samples/s of training steps (forward, backward, AdamW) and of inference, batch ``batch``, random input."""
    import timm

    import convat.models  # noqa: F401 - registers the models with timm

    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, in_chans=3, img_size=img_size).to(device)
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    y = torch.randint(0, 3, (batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(_logits(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    train = batch * steps / (time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        for i in range(warmup + steps):
            if i == warmup:
                sync()
                start = time.perf_counter()
            model(x)
    sync()
    infer = batch * steps / (time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "device": device, "img_size": img_size, "batch": batch, "params": params,
            "train_samples_per_s": round(train, 1), "infer_samples_per_s": round(infer, 1)}


def run(models: tuple[str, ...] = MODELS, img_size: int = 64, steps: int = 4) -> dict:
    """Every model on the CPU (all threads), then on CUDA when available; unknown models are reported, not fatal."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, skipped = [], {}
    for device in devices:
        for name in models:
            try:
                rows.append(throughput(name, device, img_size, steps=steps if device == "cpu" else 20))
            except Exception as exc:  # noqa: BLE001 - a missing baseline must not hide the others
                skipped[name] = f"{type(exc).__name__}: {exc}"
    return {"rows": rows, "skipped": skipped, "gpu": torch.cuda.get_device_name(0) if len(devices) > 1 else None,
            "cpu_threads": torch.get_num_threads()}
