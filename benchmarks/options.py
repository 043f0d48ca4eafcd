"""Speed-ups that would change results, measured so that whoever decides has the numbers.

The CPU targets for preprocessing and for LOSO are missed on every CPU measured, and both are compute-bound in
code that decides results: TV-L1 in ``preprocess``, the training step in ``models``/``training``. Meeting them on
two cores therefore means changing what is computed, which makes every committed result stale (the reference
study among them, the longest computation of the project). This part measures candidate changes side by side,
without adopting any:

* TV-L1 parameter sets against SynthME's true motion (end-point error per clip, paired with the current
  parameters, with a bootstrap interval), and the CPU time of the whole per-clip pipeline with each set. The flow
  is judged by its error against the truth, never by a classifier's score, so nothing here is tuned to flatter a
  model; SynthME's motion is not a real face's, which is why the decision is left to a person.
* The training step of convat_tiny in float32 (today), under bfloat16 autocast and compiled by
  ``torch.compile``, one thread (as a fold worker has), timed alternately.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from unittest import mock

import numpy as np

#: TV-L1 parameter sets compared with today's (:data:`convat.preprocess.flow.TVL1_PARAMS`): OpenCV's stopping
#: threshold, the warps per scale and the pyramid depth, alone and combined.
TVL1_VARIANTS: dict[str, dict[str, float | int]] = {
    "current": {},
    "epsilon 0.02": {"epsilon": 0.02},
    "warps 3": {"warps": 3},
    "warps 3, epsilon 0.02": {"warps": 3, "epsilon": 0.02},
    "nscales 3": {"nscales": 3},
}


def paired_interval(diffs: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of per-clip differences (clips resampled with
    replacement)."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (n_boot, len(diffs)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def tvl1_variants(records: list, variants: dict[str, dict] | None = None, repeats: int = 2) -> list[dict]:
    """Per TV-L1 parameter set: mean EPE over the frame and inside the AU masks against the true motion, the
    paired difference from the current parameters (mean and 95 % bootstrap interval over clips), and the CPU
    seconds per clip of the whole pipeline (:func:`~convat.preprocess.pipeline.motion_sample`: face, flow at the
    pipeline's flow size, strain, resize) with OpenCV and torch on one thread, as a pool worker runs. The sets
    are timed alternately, ``repeats`` times over all clips (medians). The first set is the reference.

    The error is measured on the clips' own frames, which is the flow the pipeline computes for SynthME: its
    clips are face crops (``extra["cropped"]``, so the face step keeps the whole frame) at the pipeline's flow
    size. On other records the pipeline's crop and resize come first, so the errors would not be its flow's."""
    import cv2
    import torch

    from convat.preprocess import flow
    from convat.preprocess.pipeline import PreprocessConfig, motion_sample

    variants = variants or TVL1_VARIANTS
    config = PreprocessConfig()
    pairs = [r.frames.load([r.onset, r.apex]) for r in records]
    off = [r.key for r, (onset, _) in zip(records, pairs, strict=True)
           if not r.extra.get("cropped") or onset.shape[:2] != (config.flow_size, config.flow_size)]
    if off:
        raise ValueError(f"tvl1_variants measures the flow of cropped clips at the flow size "
                         f"({config.flow_size} px), as SynthME's; these are not: {off[:3]}")
    errors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, overrides in variants.items():
        fields = [flow.tvl1(a, b, **overrides) for a, b in pairs]
        errors[name] = (np.array([flow.endpoint_error(f, r.truth.flow) for f, r in zip(fields, records, strict=True)]),
                        np.array([flow.endpoint_error(f, r.truth.flow, r.truth.mask)
                                  for f, r in zip(fields, records, strict=True)]))
    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        motion_sample(records[0], config)  # untimed: first-call costs (face cascade, imports)
        for _ in range(repeats):
            for name, overrides in variants.items():
                with mock.patch.dict(flow.TVL1_PARAMS, overrides):
                    start = time.process_time()
                    for record in records:
                        motion_sample(record, config)
                    cpu[name].append((time.process_time() - start) / len(records))
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
    reference = next(iter(variants))
    base_cpu = statistics.median(cpu[reference])
    rows = []
    for name, overrides in variants.items():
        epe, epe_au = errors[name]
        d, d_au = epe - errors[reference][0], epe_au - errors[reference][1]
        low, high = paired_interval(d)
        low_au, high_au = paired_interval(d_au)
        per_clip = statistics.median(cpu[name])
        rows.append({"variant": name, "overrides": overrides, "epe": round(float(epe.mean()), 4),
                     "epe_au": round(float(epe_au.mean()), 4),
                     "epe_change": f"{d.mean():+.4f} [{low:+.4f}, {high:+.4f}]",
                     "epe_au_change": f"{d_au.mean():+.4f} [{low_au:+.4f}, {high_au:+.4f}]",
                     "cpu_s_per_clip": round(per_clip, 4), "speedup": round(base_cpu / per_clip, 2)})
    return rows


def _inductor_config():
    """torch's inductor configuration module (imported on use: it is heavy)."""
    import torch._inductor.config

    return torch._inductor.config


def step_arithmetic(model: str = "convat_tiny", batch: int = 32, img_size: int = 64, steps: int = 5,
                    repeats: int = 7, compiled: bool = True) -> list[dict]:
    """CPU milliseconds per training step (forward, backward, AdamW; channels-last as training runs) in float32,
    under bfloat16 autocast and (``compiled``) with the model compiled by ``torch.compile`` (inductor; its
    compilation time, caches off, is reported apart), one thread, from the same initial weights, timed alternately
    (medians)."""
    import timm
    import torch

    import convat.models  # noqa: F401 - registers the models with timm

    threads = torch.get_num_threads()

    def setup():
        torch.manual_seed(0)
        net = timm.create_model(model, num_classes=3, in_chans=3, img_size=img_size)
        net = net.to(memory_format=torch.channels_last).train()
        x = torch.randn(batch, 3, img_size, img_size).contiguous(memory_format=torch.channels_last)
        return net, x, torch.randint(0, 3, (batch,)), torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step(net, x, y, opt, bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
            logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    compile_s: float | None = None
    try:
        torch.set_num_threads(1)
        arms = {"float32 (today)": (setup(), False), "bfloat16 autocast": (setup(), True)}
        if compiled:
            net, *rest = setup()
            arms["torch.compile (inductor)"] = ((torch.compile(net), *rest), False)
        ms: dict[str, list[float]] = {name: [] for name in arms}
        for name, (state, bf16) in arms.items():
            cold = name.startswith("torch.compile")
            # the compiled arm compiles here (forward and backward), with inductor's on-disk caches off so that
            # its compilation time is a first run's, not a cache hit left by an earlier measurement
            with mock.patch.object(_inductor_config(), "force_disable_caches", True) if cold else nullcontext():
                start = time.perf_counter()
                step(*state, bf16)
                step(*state, bf16)
            if cold:
                compile_s = time.perf_counter() - start
        for _ in range(repeats):
            for name, (state, bf16) in arms.items():
                start = time.process_time()
                for _ in range(steps):
                    step(*state, bf16)
                ms[name].append(1000 * (time.process_time() - start) / steps)
    finally:
        torch.set_num_threads(threads)
    base = statistics.median(ms["float32 (today)"])
    return [{"variant": name, "model": model, "cpu_ms_per_step": round(statistics.median(v), 1),
             "speedup": round(base / statistics.median(v), 2), "repeats": repeats, "steps_per_repeat": steps,
             "compile_s": round(compile_s, 1) if name.startswith("torch.compile") and compile_s else None}
            for name, v in ms.items()]


def run(n_clips: int = 48, repeats: int = 2, composite_seconds: float | None = None) -> dict:
    """Both comparisons on ``n_clips`` composite-profile SynthME clips (evenly spread). ``composite_seconds``: the
    preprocessing part's measured composite time on this machine, scaled by each set's speed-up into an estimate
    (the per-clip pipeline is ~98 % of it and the pool scales with it)."""
    from convat.data.synth import generate

    records = generate("composite")
    subset = records[:: max(1, len(records) // n_clips)][:n_clips]
    rows = tvl1_variants(subset, repeats=repeats)
    if composite_seconds:
        for row in rows:
            row["composite_seconds_estimated"] = round(composite_seconds / row["speedup"], 1)
    return {"tvl1": rows, "clips": len(subset), "repeats": repeats, "composite_seconds_measured": composite_seconds,
            "step": step_arithmetic(),
            "how": f"{len(subset)} composite-profile SynthME clips; EPE in pixels against the true motion; CPU "
                   f"seconds per clip of the whole pipeline on one thread, medians of {repeats} alternating "
                   "repeats; none of these is adopted"}
