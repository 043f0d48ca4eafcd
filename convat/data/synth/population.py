"""Drawing a SynthME population: subjects with their own style, emotions assigned to match the composite's
shares, clip parameters, and :func:`generate`, the entry point."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from convat.data.records import ClipRecord
from convat.data.synth.render import LazyTruth, SynthFrames, _blink_amount  # noqa: F401  (re-exported)
from convat.data.synth.spec import (
    _NEGATIVE_EMOTIONS,
    AU_REGIONS,
    COMPOSITE_CSV,
    COMPOSITE_EMOTION_SHARE,
    EMOTION_AUS,
    GENERATOR_VERSION,
    LABEL_SCHEMES,
    PROFILES,
    ClipParams,
    SubjectParams,
    SynthConfig,
)


def _make_subject(index: int, rng: np.random.Generator, config: SynthConfig) -> SubjectParams:
    ident, style = config.identity_strength, config.style_strength
    tone = rng.uniform(0.45, 1.0)
    skin = (235 * tone, 190 * tone * rng.uniform(0.9, 1.05), 160 * tone * rng.uniform(0.85, 1.05))
    aus = list(AU_REGIONS)
    gains = {au: float(np.clip(np.exp(rng.normal(0, 0.7 * style)), 0.3, 2.5)) for au in aus}
    shifts = {au: (float(rng.normal(0, 0.1 * style)), float(rng.normal(0, 0.1 * style))) for au in aus}
    angles = {au: float(rng.normal(0, 0.6 * style)) for au in aus}
    spreads = {au: float(np.exp(rng.normal(0, 0.3 * style))) for au in aus}
    preferred = {e: int(rng.integers(len(options))) for e, options in EMOTION_AUS.items()}
    companions = {e: str(rng.choice(aus)) for e in EMOTION_AUS}
    shares = np.array([COMPOSITE_EMOTION_SHARE[e] for e in EMOTION_AUS])
    class_mix = rng.dirichlet(config.class_skew * len(shares) * shares)
    subject = SubjectParams(
        name=f"s{index + 1:02d}",
        seed=int(rng.integers(2**31)),
        face_center=(0.5 + rng.normal(0, 0.03 * ident), 0.5 + rng.normal(0, 0.03 * ident)),
        face_axes=(0.39 + rng.uniform(-0.04, 0.04) * ident, 0.47 + rng.uniform(-0.03, 0.03) * ident),
        skin=skin,
        feature_jitter=tuple(float(x) for x in rng.normal(0, 0.03 * ident, 12)),
        au_gain=gains,
        asymmetry=float(np.clip(rng.normal(0, 0.35 * style), -0.6, 0.6)),
        habit_au=companions["happiness"],
        au_shift=shifts,
        au_angle=angles,
        au_spread=spreads,
        expressivity=float(np.clip(np.exp(rng.normal(0, 0.5 * style)), 0.5, 2.0)),
        preferred=preferred,
        companions=companions,
        class_mix=tuple(float(x) for x in class_mix),
        jitteriness=float(np.clip(np.exp(rng.normal(0, 0.5)), 0.4, 2.5)),
        blink_rate=float(np.exp(rng.normal(0, 0.5))),
    )
    return subject


def composite_counts(path: Path = COMPOSITE_CSV) -> list[dict[str, int]]:
    """Per-subject class counts of the MEGC2019 composite, in the list's subject order (no names kept)."""
    order: list[tuple[str, str]] = []
    counts: dict[tuple[str, str], dict[str, int]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["dataset"], row["subject"])
            if key not in counts:
                order.append(key)
                counts[key] = {"positive": 0, "negative": 0, "surprise": 0}
            counts[key][row["label"]] += 1
    return [counts[k] for k in order]


def _largest_remainder(total: int, shares: dict[str, float]) -> dict[str, int]:
    names = list(shares)
    weights = np.array([shares[k] for k in names], dtype=float)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(names, (int(c) for c in counts), strict=True))


def _assign_emotions(subjects: list[SubjectParams], config: SynthConfig, rng: np.random.Generator) -> list[list[str]]:
    """Emotions of each subject's clips: exact global totals, a skewed mix per subject."""
    emotions = list(EMOTION_AUS)
    if config.counts == "composite":
        table = composite_counts()
        if config.n_subjects > len(table):
            raise ValueError(f"counts='composite' has {len(table)} subjects; got n_subjects={config.n_subjects}")
        table = table[: config.n_subjects]
        n_neg = sum(t["negative"] for t in table)
        neg_share = {e: COMPOSITE_EMOTION_SHARE[e] for e in _NEGATIVE_EMOTIONS}
        pool = [e for e, c in _largest_remainder(n_neg, neg_share).items() for _ in range(c)]
        # deal the negative emotions to subjects following each subject's own preference
        slots = [i for i, t in enumerate(table) for _ in range(t["negative"])]
        rng.shuffle(slots)
        negatives: list[list[str]] = [[] for _ in table]
        remaining = {e: pool.count(e) for e in _NEGATIVE_EMOTIONS}
        for i in slots:
            mix = np.array([subjects[i].class_mix[emotions.index(e)] * remaining[e] for e in _NEGATIVE_EMOTIONS])
            e = _NEGATIVE_EMOTIONS[int(rng.choice(len(mix), p=mix / mix.sum()))]
            remaining[e] -= 1
            negatives[i].append(e)
        out = []
        for i, t in enumerate(table):
            seq = ["happiness"] * t["positive"] + ["surprise"] * t["surprise"] + negatives[i]
            rng.shuffle(seq)
            out.append(seq)
        return out
    if config.counts != "uniform":
        raise ValueError(f"unknown counts {config.counts!r}; choose 'uniform' or 'composite'")
    total = config.n_subjects * config.clips_per_subject
    remaining = _largest_remainder(total, COMPOSITE_EMOTION_SHARE)
    slots = [i for i in range(config.n_subjects) for _ in range(config.clips_per_subject)]
    rng.shuffle(slots)
    out = [[] for _ in subjects]
    for i in slots:
        mix = np.array([subjects[i].class_mix[k] * remaining[e] for k, e in enumerate(emotions)])
        e = emotions[int(rng.choice(len(mix), p=mix / mix.sum()))]
        remaining[e] -= 1
        out[i].append(e)
    return out


def _clip_params(subject: SubjectParams, emotion: str, config: SynthConfig, rng: np.random.Generator) -> ClipParams:
    options = EMOTION_AUS[emotion]
    # the subject's preferred combination most of the time, any other one otherwise
    prefer = 0.35 + 0.55 * min(config.style_strength, 1.0)
    variant = subject.preferred.get(emotion, 0) if rng.random() < prefer else int(rng.integers(len(options)))
    aus = options[variant]
    companion = subject.companions.get(emotion)
    if companion and companion not in aus and rng.random() < config.companion_prob * min(config.style_strength, 1.0):
        aus = (*aus, companion)
    # pixels at 128 px; the gain of the subject's AU multiplies it in au_displacement, so cap the product
    intensities = tuple(
        float(min(rng.uniform(0.4, 1.0) * subject.expressivity * (0.6 if au == companion else 1.0),
                  config.max_au_displacement / subject.au_gain.get(au, 1.0)) * config.amplitude)
        for au in aus
    )
    duration = rng.uniform(0.2, 0.5) * config.fps  # onset -> offset, 200-500 ms
    n_frames = round(duration + rng.uniform(0.05, 0.15) * config.fps)
    n_frames = int(np.clip(n_frames, config.min_frames, config.max_frames))
    onset = int(rng.integers(1, max(2, n_frames // 8)))
    offset = n_frames - 1 - int(rng.integers(0, max(1, n_frames // 8)))
    span = offset - onset
    apex = int(rng.integers(onset + max(1, span // 4), onset + max(2, 2 * span // 3) + 1))
    blink_duration = max(3, int(round(rng.uniform(0.1, 0.2) * config.fps)))
    blinks = rng.random() < min(1.0, config.blink_prob * subject.blink_rate)
    return ClipParams(
        subject=subject,
        seed=int(rng.integers(2**31)),
        emotion=emotion,
        aus=aus,
        intensities=intensities,
        n_frames=n_frames,
        onset=onset,
        apex=apex,
        offset=offset,
        head_shift=tuple(float(x) for x in rng.normal(0, config.head_motion * subject.jitteriness, 2)),
        blink_frame=int(rng.integers(0, n_frames)) if blinks else None,
        size=config.size,
        illumination_drift=config.illumination_drift,
        noise_std=config.noise_std,
        head_angle=float(rng.normal(0, config.head_rotation * subject.jitteriness)),
        blink_duration=blink_duration,
        blink_amplitude=config.blink_amplitude,
        illumination_angle=float(rng.uniform(0, 2 * np.pi)),
    )


def resolve_config(config: SynthConfig | str = "quick", **overrides) -> SynthConfig:
    """A profile name or a :class:`SynthConfig`, with overrides applied and checked."""
    if isinstance(config, str):
        if config not in PROFILES:
            raise ValueError(f"unknown SynthME profile {config!r}; choose one of {sorted(PROFILES)}")
        config = PROFILES[config]
    unknown = set(overrides) - set(SynthConfig.__dataclass_fields__)
    if unknown:
        options = sorted(SynthConfig.__dataclass_fields__)
        raise TypeError(f"unknown SynthME option(s) {sorted(unknown)}; options are {options}")
    config = replace(config, **overrides)
    if config.label_scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {config.label_scheme!r}; choose one of {sorted(LABEL_SCHEMES)}")
    return config


def generate(config: SynthConfig | str = "quick", **overrides) -> list[ClipRecord]:
    """Clip records of a SynthME dataset: a profile name or a :class:`SynthConfig`, plus overrides.

    >>> records = generate("quick", n_subjects=3, clips_per_subject=2)
    >>> len(records)
    6
    """
    config = resolve_config(config, **overrides)
    rng = np.random.default_rng(config.seed)
    subjects = [_make_subject(i, rng, config) for i in range(config.n_subjects)]
    per_subject = _assign_emotions(subjects, config, rng)
    records = []
    for subject, emotions in zip(subjects, per_subject, strict=True):
        for c_index, emotion in enumerate(emotions):
            params = _clip_params(subject, emotion, config, rng)
            records.append(
                ClipRecord(
                    dataset="synthme",
                    subject=subject.name,
                    clip=f"{subject.name}_{c_index + 1:02d}",
                    label=LABEL_SCHEMES[config.label_scheme][emotion],
                    onset=params.onset,
                    apex=params.apex,
                    offset=params.offset,
                    frames=SynthFrames(params),
                    aus=params.aus,
                    emotion=emotion,
                    truth=LazyTruth(params),
                    extra={"fps": config.fps, "cropped": True, "generator": GENERATOR_VERSION},
                )
            )
    return records
