"""The Markdown table of ``make bench``: every result file in ``benchmarks/results`` as one page."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.common import ARCHIVE
from benchmarks.preprocessing import EPE_MARGIN
from convat.site.environment import machine_cpu

ORDER = ("preprocessing", "models", "threads", "loso", "gpu", "chapters", "chapters_load", "options")


def _freed_memory_note(rows: list[dict]) -> list[str]:
    """One sentence per load on the worker pool with freed memory kept (convat's default) against glibc's
    defaults, from the LOSO rows measured side by side (none where the run had no such contrast)."""
    out = []
    for busy in sorted({r.get("busy_processes", 0) for r in rows}):
        pool = [r for r in rows if r.get("busy_processes", 0) == busy and r["strategy"].startswith("worker pool")]
        kept = next((r for r in pool if r.get("freed_memory") == "kept"), None)
        trims = next((r for r in pool if r.get("freed_memory") == "glibc defaults"), None)
        if kept and trims and kept["train_s_median"]:
            out.append(f"With {busy} busy processes, the worker pool trained in {kept['train_s_median']} s keeping "
                       f"freed memory (`convat.runtime.keep_freed_memory`) and {trims['train_s_median']} s with "
                       f"glibc's defaults ({trims['train_s_median'] / kept['train_s_median']:.2f}x); system CPU "
                       f"{kept.get('process_sys_s_median')} s against {trims.get('process_sys_s_median')} s.")
    return ["", " ".join(out)] if out else []


def _table(rows: list[dict], columns: list[str] | None = None) -> list[str]:
    if not rows:
        return ["(no rows)"]
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if isinstance(v, float):
                cells.append(f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _targets(targets: list[dict]) -> list[str]:
    lines = []
    for t in targets:
        if t["met"] is None:
            verdict = "not judged" if t.get("judged") is False else "not measured"
        elif t["met"]:
            verdict = "**met**"
        else:
            verdict = f"**missed** by x{t['missed_by']}"
        value = "—" if t["value"] is None else f"{t['value']} {t['unit']}"
        lines.append(f"- {t['target']}: {value} (target < {t['limit']} {t['unit']}) — {verdict}; {t['how']}")
    return lines


def _provenance(part: dict, header: dict) -> str:
    """When a part kept from an earlier run was measured, and on which CPU and commit where those differ from the
    header's: its numbers are not comparable with the header's machine otherwise."""
    out = [f"{part['date']} UTC"]
    if machine_cpu(part["machine"]) != machine_cpu(header["machine"]):
        out.append(f"on another CPU, {machine_cpu(part['machine'])}")
    if part.get("git_commit") != header.get("git_commit"):
        out.append(f"commit {part.get('git_commit')}")
    return ", ".join(out)


def _by_machine(archive: dict[str, dict]) -> list[str]:
    """The table of every target's latest value on each machine that measured it (the archive of
    :func:`benchmarks.common.archive_targets`): one row per target, one column per machine."""
    if not archive:
        return []
    machines = sorted(archive, key=lambda m: (m.startswith("GPU "), m))
    parts = {name: t.get("part") for m in machines for name, t in archive[m].items()}
    names = sorted(parts, key=lambda n: (ORDER.index(parts[n]) if parts[n] in ORDER else len(ORDER), n))
    lines = ["**Targets on each machine measured** — the latest value of each target per machine (a CPU with its "
             "float kernels, or a GPU), kept across `make bench` runs, since the machines differ about 2x; the "
             "part files above hold only the latest run:", "",
             "| target | limit | " + " | ".join(machines) + " |", "|" + "---|" * (len(machines) + 2)]
    for name in names:
        first = next(archive[m][name] for m in machines if name in archive[m])
        cells = []
        for m in machines:
            t = archive[m].get(name)
            if t is None:
                cells.append("—")
                continue
            verdict = "met" if t["met"] else f"missed x{t['missed_by']}"
            cells.append(f"{t['value']:g} {t['unit']}, {verdict} ({t['date'][:10]}, {t.get('git_commit')})")
        lines.append(f"| {name} | < {first['limit']:g} {first['unit']} | " + " | ".join(cells) + " |")
    return lines + [""]


def render(results: dict[str, dict], archive: dict[str, dict] | None = None) -> str:
    """Markdown of the results keyed by benchmark name, and of the targets archived per machine."""
    latest = max((v.get("run_id") or "" for v in results.values()), default="")
    # the header describes the latest run; parts kept from an earlier one say when, where and at which commit
    first = next((v for v in results.values() if (v.get("run_id") or "") == latest), next(iter(results.values())))
    m = first["machine"]
    loads = ", ".join(f"{k} {v['load_average_1min']:.1f}" for k, v in results.items()
                      if v.get("load_average_1min") is not None)
    competing = ", ".join(f"{k} {v['others_running_at_start']:g}" for k, v in results.items()
                          if v.get("others_running_at_start") is not None)
    out = [f"Measured {first['date']} UTC on {machine_cpu(m)} ({m['cpu cores']} cores, {m.get('memory', '?')}), "
           f"GPU: {m.get('gpu')}; torch {first['versions']['torch']}, timm {first['versions']['timm']}, "
           f"opencv {first['versions']['opencv-contrib-python-headless']}, python {m['python']}, "
           f"commit {first['git_commit']}. One-minute load average at the end of each part (it includes the "
           f"benchmark's own processes and decays over a minute): {loads}."
           + (f" Other runnable processes when each part started (what competed for the {first['cpu_count']} "
              f"cores): {competing}." if competing else ""), ""]
    earlier = {k: _provenance(v, first) for k, v in results.items() if (v.get("run_id") or "") != latest}
    if earlier:
        out[-2] += (" Parts kept from an earlier `make bench`: "
                    + ", ".join(f"{k} ({d})" for k, d in earlier.items()) + ".")
    parts = {k: v.get("part_seconds") for k, v in results.items() if v.get("part_seconds") is not None}
    if parts:
        out += ["`make bench` time: " + ", ".join(f"{k} {s:.0f} s" for k, s in parts.items())
                + f" (total {sum(parts.values()):.0f} s).", ""]
    if "preprocessing" in results:
        r = results["preprocessing"]
        out += [f"**Preprocessing** — optical flow onset→apex on {r['subset_clips']} composite-profile SynthME clips, "
                "every method on the same clips in one process; EPE in pixels against the true motion "
                "(whole frame / inside the AU masks):", ""]
        out += _table(r["rows"], ["method", "clips_per_s", "epe", "epe_au"])
        c = r["composite"]
        out += ["", f"The composite ({c['clips']} clips) through the whole pipeline (face, apex, {c['method']} flow, "
                f"strain, {c['size']} px; {c.get('how', 'measured')}): {c['seconds']} s ({c['clips_per_s']} clips/s). "
                f"Judged by EPE inside the AU masks instead, the fastest method within 10 % of TV-L1 is "
                f"{c.get('fastest_within_10pct_au_epe')} (its flow alone: {c.get('flow_only_seconds_fastest_au')} s "
                "for the composite).", ""]
        if c.get("by_workers"):
            out += ["The same clips in one process and in the worker pool (wall and CPU seconds, workers' CPU "
                    "included, extrapolated to the composite; medians of interleaved repeats where counted):", ""]
            out += _table(c["by_workers"], ["workers"] + (["repeats"] if "repeats" in c["by_workers"][0] else [])
                          + ["seconds_extrapolated", "cpu_seconds_extrapolated", "load_average"])
            out += [""]
    if "models" in results:
        r = results["models"]
        timing = next((f"; median of {row['repeats']} timings of {row['steps_per_repeat']} steps"
                       for row in r["rows"] if row.get("repeats")), "")
        out += ["**Models** — samples/s with batch 32 at 64 px, random input; training = forward + backward + AdamW "
                f"(CPU: {r['cpu_threads']} threads{timing}):", ""]
        layout = ["train_channels_last_samples_per_s", "channels_last_speedup"] if any(
            "channels_last_speedup" in row for row in r["rows"]) else []
        out += _table(r["rows"], ["model", "device", "params", "train_samples_per_s", *layout, "infer_samples_per_s"])
        if layout:
            out += ["", "`train_samples_per_s` is in the contiguous layout; `channels_last_speedup` is the "
                    "channels-last layout's training samples/s over it (median of the per-repeat ratios; the two "
                    "timed alternately in one process), the layout training uses by default "
                    "(`TrainConfig.channels_last`) on every device."]
        if r.get("skipped"):
            out += ["", "Not measured: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items())]
        out += [""]
    if "threads" in results:
        r = results["threads"]
        out += [f"**Threads under load** — {r['how']}; medians; train = time inside the process, process = wall "
                "and CPU time of the whole process (start-up included); busy = background processes spinning "
                "one core each, started and stopped by the benchmark:", ""]
        out += _table(r["rows"], ["variant", "busy_processes", "train_s_median", "process_wall_s_median",
                                  "process_cpu_s_median", "load_avg_max", "slowdown_vs_quiet"])
        out += [""]
    if "loso" in results:
        r = results["loso"]
        out += [f"**LOSO** — composite profile ({r['total_folds']} folds), convat_tiny at 64 px, extrapolated to "
                f"the full run ({r['extrapolation']}) from the training time; medians of interleaved repeats, "
                "each a fresh process; busy = background processes started by the benchmark:", ""]
        out += _table(r["rows"], ["strategy", "busy_processes", "folds_timed", "epochs_timed", "train_s_median",
                                  "process_wall_s_median", "process_cpu_s_median"]
                     + (["process_sys_s_median"] if "process_sys_s_median" in r["rows"][0] else [])
                     + ["load_avg_max", "slowdown_vs_no_busy", "full_minutes_extrapolated"]
                     + (["recipe_minutes_extrapolated"] if "recipe_minutes_extrapolated" in r["rows"][0] else []))
        out += _freed_memory_note(r["rows"])
        if "recipe_extrapolation" in r:
            out += ["", f"`full_minutes_extrapolated` is at {r['full_epochs']} epochs per fold (the budget the target "
                    f"was set on); `recipe_minutes_extrapolated` at the reference recipe's {r['recipe_steps']} "
                    f"optimiser steps per fold ({r['recipe_extrapolation']})."]
        out += [""]
    if "gpu" in results:
        r = results["gpu"]
        out += [f"**GPU** — {r['how']}:", ""]
        out += _table(r["rows"], ["variant", "device", "seconds", "full_seconds_extrapolated", "note"])
        out += [""]
    if "chapters" in results:
        r = results["chapters"]
        out += [f"**Chapters** (quick profile) — from {r['source']}:", ""]
        out += _table(r["rows"], ["chapter", "seconds", "budget_s", "within_budget"])
        if r.get("total_seconds") is not None:
            out += ["", f"Total: {r['total_seconds']} s."]
        out += [""]
    if "chapters_load" in results:
        r = results["chapters_load"]
        out += [f"**Chapters under load** — every page from a fresh cache in the build's order while "
                f"{r['busy_processes']} busy background processes spin one core each (started and stopped by the "
                f"benchmark; load average {r.get('load_average_under_load')}), beside the quiet times of the "
                f"chapters part ({r.get('quiet_source') or 'none measured'}):", ""]
        out += _table(r["rows"], ["chapter", "seconds", "quiet_seconds", "slowdown", "budget_s"])
        if r.get("total_seconds") is not None:
            out += ["", f"Total: {r['total_seconds']} s; cell timeout {r['cell_timeout_s']} s."]
        out += [""]
    if "options" in results:
        r = results["options"]
        out += [f"**Options that would change results** (measured, none adopted) — {r['how']}. TV-L1 parameter "
                "sets (EPE change: mean over clips of the paired difference from today's, 95 % bootstrap "
                "interval):", ""]
        estimated = ["composite_seconds_estimated"] if any("composite_seconds_estimated" in row
                                                          for row in r["tvl1"]) else []
        out += _table(r["tvl1"], ["variant", "epe", "epe_change", "epe_au", "epe_au_change", "cpu_s_per_clip",
                                  "speedup", *estimated])
        if estimated:
            out += ["", f"`composite_seconds_estimated`: the preprocessing part's {r['composite_seconds_measured']} s "
                    "on this CPU divided by the set's speed-up."]
        out += ["", "The training step (one thread, as a fold worker):", ""]
        out += _table(r["step"], ["variant", "model", "cpu_ms_per_step", "speedup", "repeats"]
                      + (["compile_s"] if any(row.get("compile_s") for row in r["step"]) else []))
        out += [""]
    out += ["**Targets**", ""]
    for name in ORDER:
        if name in results:
            out += _targets(results[name].get("targets", []))
    notes = why_missed(results) + not_measured(results)
    if notes:
        out += ["", "**Why targets were missed or not measured** (computed from the figures above)", ""] + [
            f"- {n}" for n in notes]
    if archive:
        out += [""] + _by_machine(archive)
    return "\n".join(out).rstrip("\n") + "\n"


def why_missed(results: dict[str, dict]) -> list[str]:
    """One sentence per missed target, from the measured throughputs."""
    notes = []
    missed = {t["target"] for r in results.values() for t in r.get("targets", []) if t["met"] is False}
    cores = next(iter(results.values())).get("cpu_count") or 1
    # other processes at the start of a part (old result files without that reading: the load average, which
    # also counts the benchmark's own processes, so only a load above the core count is read as sharing)
    shared = {k: (r["others_running_at_start"], "other runnable processes") if "others_running_at_start" in r
              else (r.get("load_average_1min") or 0.0, "load average") for k, r in results.items()
              if not ("others_running_at_start" in r and r["others_running_at_start"] is None)}
    shared = {k: v for k, v in shared.items()
              if (v[1] == "other runnable processes" and v[0] >= 0.5) or (v[1] == "load average" and v[0] > cores)}
    if shared:
        worst = max(v[0] for v in shared.values())
        what = "load average" if all(v[1] == "load average" for v in shared.values()) else "other runnable processes"
        notes.append(f"The machine was shared while {', '.join(shared)} ran (up to {worst:g} {what} on {cores} "
                     "cores): those parts' times are inflated by the competition.")
    pre = results.get("preprocessing")
    if pre and any(t.startswith("composite preprocessing") for t in missed):
        rows = {r["method"]: r for r in pre["rows"]}
        tv = rows.get("tvl1")
        fast = [r for m, r in rows.items() if m not in ("tvl1", "zero")]
        if tv and fast:
            quickest = max(fast, key=lambda r: r["clips_per_s"])
            ratio = quickest["epe"] / tv["epe"]
            if ratio > EPE_MARGIN:
                margin = f"{(EPE_MARGIN - 1) * 100:.0f} %"
                why = (f"has a whole-frame EPE {ratio:.2f}x TV-L1's, outside the {margin} margin, so the target has "
                       "to be met with TV-L1 itself: more CPU cores, a GPU TV-L1 or other TV-L1 parameters")
            else:
                why = "is within the EPE margin, so the time goes to the rest of the pipeline (faces, strain, resize)"
            notes.append(f"Preprocessing: TV-L1 computes {tv['clips_per_s']:.2f} clips/s here; the fastest "
                         f"alternative, {quickest['method']} ({quickest['clips_per_s']:.0f} clips/s), {why}.")
        option = tvl1_option(same_machine(results.get("options"), pre))
        if option:
            notes.append(option)
    loso, models = results.get("loso"), results.get("models")
    if loso and models and any(t.startswith("composite LOSO") and "CPU" in t for t in missed):
        rate = {r["model"]: r["train_samples_per_s"] for r in models["rows"] if r["device"] == "cpu"}
        model = loso["rows"][0].get("model", "convat_tiny")
        quiet = {r["strategy"]: r["full_minutes_extrapolated"] for r in loso["rows"]
                 if not r.get("busy_processes") and r.get("full_minutes_extrapolated")}
        if model in rate and quiet:
            samples = loso["total_folds"] * loso["full_epochs"] * 435
            best = min(quiet, key=quiet.get)
            gain = max(quiet.values()) / quiet[best]
            target_min = next(t["limit"] for t in loso["targets"] if t["target"].startswith("composite LOSO")
                              and "CPU" in t["target"])
            needed = math.ceil(quiet[best] / target_min * cores)
            notes.append(f"LOSO: a full composite run trains {loso['total_folds']} folds x {loso['full_epochs']} "
                         f"epochs x ~435 clips = {samples:,} samples; at {model}'s measured {rate[model]} training "
                         f"samples/s one process needs about {samples / rate[model] / 60:.0f} min. The fastest "
                         f"strategy here, {best}, is {gain:.2f}x the slowest and extrapolates to "
                         f"{quiet[best]:.1f} min: the target needs {quiet[best] / target_min:.1f}x more throughput "
                         f"than these {cores} cores give: a GPU, or at least {needed} cores "
                         "with one fold worker each if throughput grew linearly with cores (not measured; the "
                         "memory-bound stem may not).")
        step = [r for r in (same_machine(results.get("options"), loso) or {}).get("step", [])
                if not r["variant"].endswith("(today)")]
        if step:
            faster = [r for r in step if r["speedup"] > 1]
            said = "; ".join(f"{r['variant']} {r['speedup']}x" for r in step)
            notes.append(f"LOSO: other arithmetic for {step[0]['model']}'s training step on one thread here, against "
                         f"today's float32 (options part): {said}; "
                         + ("a faster one would change every result, so none is adopted." if faster else
                            "none is faster on this CPU."))
    book = results.get("chapters")
    if book and any(t.startswith("whole book") for t in missed) and book.get("slowest_cells"):
        limit = next(t["limit"] for t in book["targets"] if t["target"].startswith("whole book"))
        cells = sorted(((c["seconds"], chapter, c) for chapter, top in book["slowest_cells"].items() for c in top),
                       key=lambda t: -t[0])
        heavy = [(s, chapter, c) for s, chapter, c in cells if s >= 20]
        if heavy:
            spent = sum(s for s, _, _ in heavy)
            listed = "; ".join(f"{chapter.removeprefix('book/')} code cell {c['cell']}"
                               + (f" ({c['section']})" if c.get("section") else "")
                               + f", starting `{c['code']}`, {s:.0f} s" for s, chapter, c in heavy)
            notes.append(f"Book: {len(heavy)} cells of 20 s or more take {spent:.0f} s of the "
                         f"{book['total_seconds']:.0f} s ({listed}); without them the book would take "
                         f"{book['total_seconds'] - spent:.0f} s against the {limit:.0f} s target.")
    return notes


def same_machine(options: dict | None, part: dict) -> dict | None:
    """The options part's result when it was measured on the machine of ``part`` (its speed-ups are ratios of
    that machine's), else None: a note must not read one CPU's options against another's missed target."""
    from benchmarks.common import archive_key

    if not options or "machine" not in options or "machine" not in part:
        return None
    return options if archive_key(options) == archive_key(part) else None


def tvl1_option(options: dict | None) -> str | None:
    """The sentence on the fastest measured TV-L1 parameter set whose EPE, over the frame and in the AU masks, stays
    within :data:`EPE_MARGIN` of today's; None without the options part or without such a set."""
    if not options or not options.get("tvl1"):
        return None
    today = options["tvl1"][0]
    kept = [r for r in options["tvl1"][1:] if r["epe"] <= EPE_MARGIN * today["epe"]
            and r["epe_au"] <= EPE_MARGIN * today["epe_au"] and r["speedup"] > 1]
    if not kept:
        return (f"Preprocessing: none of the TV-L1 parameter sets measured in the options part is faster with an EPE "
                f"within {EPE_MARGIN - 1:.0%} of today's.")
    best = max(kept, key=lambda r: r["speedup"])
    estimate = (f", about {best['composite_seconds_estimated']} s for the composite"
                if best.get("composite_seconds_estimated") is not None else "")
    return (f"Preprocessing: TV-L1 with {best['variant']} measured {best['speedup']}x faster per clip{estimate}, at a "
            f"whole-frame EPE change of {best['epe_change']} px and {best['epe_au_change']} px in the AU masks "
            f"(options part, {options['clips']} SynthME clips). It is not adopted: it changes every preprocessed "
            "tensor, so every committed result (the reference study among them) would have to be made again.")


def not_measured(results: dict[str, dict]) -> list[str]:
    """One sentence per part whose targets could not be measured on the machines that ran it (the GPU part
    without CUDA), saying what would measure them; a part not judged for another reason says so in its row."""
    from benchmarks.gpu import BUDGET_S

    notes = []
    gpu = results.get("gpu")
    if gpu and not gpu.get("gpu"):  # no CUDA device where it ran
        notes.append(f"GPU: {gpu['how']} ({gpu['date']} UTC, on {machine_cpu(gpu['machine'])}), so its targets "
                     "are not measured; `python -m benchmarks.gpu` on a CUDA machine measures them (it starts no "
                     f"variant after {BUDGET_S:.0f} s; the compiled variant's compilation comes on top) and "
                     "`python -m benchmarks.run --report-only` puts them here.")
    elif gpu:
        missing = [f"{r['variant']} ({r['note']})" for r in gpu.get("rows", []) if r.get("seconds") is None]
        if missing:
            notes.append(f"GPU ({gpu.get('gpu')}): not timed: " + "; ".join(missing) + ".")
    return notes


def load_archive(folder: Path) -> dict[str, dict]:
    """The targets archived per machine in ``folder`` (empty where none were)."""
    path = folder / ARCHIVE
    return json.loads(path.read_text()) if path.is_file() else {}


def load(folder: Path) -> dict[str, dict]:
    found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    return {k: found[k] for k in ORDER if k in found}
