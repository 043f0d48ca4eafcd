"""Optical flow against SynthME's true motion: end-point error and speed of each method, side by side."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import torch

from convat.data.records import ClipRecord
from convat.preprocess.flow import compute_flow_batch, endpoint_error, flow_params
from convat.preprocess.flow_torch import torch_device

BENCHMARK_METHODS = ("tvl1", "dis", "farneback", "hs", "zero")


def flow_benchmark(records: list[ClipRecord], methods: tuple[str, ...] = BENCHMARK_METHODS,
                   device: str = "auto") -> pd.DataFrame:
    """Mean EPE (pixels) over the whole frame and inside the AU masks, and clips per second, per method.

    The onset and annotated apex frames of every clip are loaded once; each method then runs over all of them in
    the same process (after one untimed warm-up pair, so library start-up is not counted), so the speeds are
    comparable. ``hs`` runs as one batch on the torch ``device`` (``auto``: a GPU when there is one; the
column ``device`` says where it ran). Records need SynthME ground truth (``truth``).
    """
    missing = [r.key for r in records if r.truth is None]
    if missing:
        raise ValueError(f"flow_benchmark needs clips with a true flow field (SynthME); these have none: {missing}")
    pairs = [r.frames.load([r.onset, r.apex]) for r in records]
    prevs, nxts = [p[0] for p in pairs], [p[1] for p in pairs]
    truths = [(r.truth.flow, r.truth.mask) for r in records]
    rows = []
    for method in methods:
        compute_flow_batch(prevs[:1], nxts[:1], method, device)
        start = time.perf_counter()
        flows = compute_flow_batch(prevs, nxts, method, device)
        if method == "hs" and torch_device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rows.append({
            "method": method,
            "epe": float(np.mean([endpoint_error(f, t) for f, (t, _) in zip(flows, truths, strict=True)])),
            "epe_au": float(np.mean([endpoint_error(f, t, m) for f, (t, m) in zip(flows, truths, strict=True)])),
            "clips_per_s": len(records) / max(seconds, 1e-9),
            "device": str(torch_device(device)) if method == "hs" else "cpu",
            "params": json.dumps(flow_params(method), sort_keys=True),
        })
    return pd.DataFrame(rows)
