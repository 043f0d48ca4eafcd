"""Preprocessing: clips/s and EPE per flow method (side by side), then the composite end to end."""

from __future__ import annotations

import tempfile

from benchmarks.common import stopwatch, target

#: Methods compared; ``zero`` (no motion) is the floor any method must beat.
METHODS = ("tvl1", "dis", "farneback", "hs", "zero")


def run(n_clips: int = 40, size: int = 64) -> dict:
    """EPE and clips/s of every method on ``n_clips`` composite-profile SynthME clips, then the full composite
    preprocessed (face, apex, flow, strain, resize) with the fastest method within 10 % of TV-L1's EPE."""
    from convat.data.synth import generate
    from convat.preprocess.cache import TensorCache
    from convat.preprocess.evaluate import flow_benchmark
    from convat.preprocess.pipeline import PreprocessConfig, preprocess

    with stopwatch() as gen:
        records = generate("composite")
    step = max(1, len(records) // n_clips)
    subset = records[::step][:n_clips]
    table = flow_benchmark(subset, METHODS)
    rows = table.to_dict("records")
    tvl1 = table.set_index("method").loc["tvl1", "epe"]
    eligible = table[(table.method != "zero") & (table.epe <= 1.10 * tvl1)].sort_values("clips_per_s", ascending=False)
    best = str(eligible.iloc[0]["method"])
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as full:
        x, _ = preprocess(records, PreprocessConfig(flow=best, size=size), cache=TensorCache(tmp), progress=False)
    seconds = full()
    return {
        "rows": rows,
        "subset_clips": len(subset),
        "composite": {"clips": len(records), "method": best, "size": size, "seconds": round(seconds, 2),
                      "clips_per_s": round(len(records) / seconds, 2), "generate_seconds": round(gen(), 2),
                      "shape": list(x.shape)},
        "targets": [target("composite preprocessing, fastest method within 10 % of TV-L1's EPE", seconds, 60.0, "s",
                           f"{best}, {len(records)} clips, fresh cache, measured")],
    }
