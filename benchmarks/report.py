"""The Markdown table of ``make bench``: every result file in ``benchmarks/results`` as one page."""

from __future__ import annotations

import json
from pathlib import Path

ORDER = ("preprocessing", "models", "loso", "chapters")


def _table(rows: list[dict], columns: list[str] | None = None) -> list[str]:
    if not rows:
        return ["(no rows)"]
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            cells.append(f"{v:.3g}" if isinstance(v, float) and abs(v) < 100 else str("" if v is None else v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _targets(targets: list[dict]) -> list[str]:
    lines = []
    for t in targets:
        if t["met"] is None:
            verdict = "not measured"
        elif t["met"]:
            verdict = "**met**"
        else:
            verdict = f"**missed** by x{t['missed_by']}"
        value = "—" if t["value"] is None else f"{t['value']} {t['unit']}"
        lines.append(f"- {t['target']}: {value} (target < {t['limit']} {t['unit']}) — {verdict}; {t['how']}")
    return lines


def render(results: dict[str, dict]) -> str:
    """Markdown of the results keyed by benchmark name."""
    first = next(iter(results.values()))
    m = first["machine"]
    loads = ", ".join(f"{k} {v['load_average_1min']:.1f}" for k, v in results.items()
                      if v.get("load_average_1min") is not None)
    out = [f"Measured {first['date']} UTC on {m['cpu']} ({m['cpu cores']} cores, {m.get('memory', '?')}), "
           f"GPU: {m.get('gpu')}; torch {first['versions']['torch']}, timm {first['versions']['timm']}, "
           f"opencv {first['versions']['opencv-contrib-python-headless']}, python {m['python']}, "
           f"commit {first['git_commit']}. One-minute load average at the end of each part (other processes "
           f"competing for the {first['cpu_count']} cores): {loads}.", ""]
    if "preprocessing" in results:
        r = results["preprocessing"]
        out += [f"**Preprocessing** — optical flow onset→apex on {r['subset_clips']} composite-profile SynthME clips, "
                "every method on the same clips in one process; EPE in pixels against the true motion "
                "(whole frame / inside the AU masks):", ""]
        out += _table(r["rows"], ["method", "clips_per_s", "epe", "epe_au"])
        c = r["composite"]
        out += ["", f"The whole composite ({c['clips']} clips) through the pipeline (face, apex, {c['method']} flow, "
                f"strain, {c['size']} px), fresh cache: {c['seconds']} s ({c['clips_per_s']} clips/s).", ""]
    if "models" in results:
        r = results["models"]
        out += ["**Models** — samples/s with batch 32 at 64 px, random input; training = forward + backward + AdamW "
                f"(CPU: {r['cpu_threads']} threads):", ""]
        out += _table(r["rows"], ["model", "device", "params", "train_samples_per_s", "infer_samples_per_s"])
        if r.get("skipped"):
            out += ["", "Not measured: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items())]
        out += [""]
    if "loso" in results:
        r = results["loso"]
        out += [f"**LOSO** — composite profile ({r['total_folds']} folds), extrapolated to the full run "
                f"({r['extrapolation']}):", ""]
        out += _table(r["rows"], ["strategy", "device", "model", "folds_timed", "epochs_timed", "seconds_timed",
                                  "full_minutes_extrapolated"])
        out += [""]
    if "chapters" in results:
        r = results["chapters"]
        out += [f"**Chapters** (quick profile) — from {r['source']}:", ""]
        out += _table(r["rows"], ["chapter", "seconds", "budget_s", "within_budget"])
        if r.get("total_seconds") is not None:
            out += ["", f"Total: {r['total_seconds']} s."]
        out += [""]
    out += ["**Targets**", ""]
    for name in ORDER:
        if name in results:
            out += _targets(results[name].get("targets", []))
    return "\n".join(out) + "\n"


def load(folder: Path) -> dict[str, dict]:
    found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    return {k: found[k] for k in ORDER if k in found}
