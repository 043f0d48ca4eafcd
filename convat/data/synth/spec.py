"""SynthME's vocabulary and settings: action units and their face regions, emotions and label schemes, the
composite's class shares, the profiles, and the parameters of a subject, a clip and its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GENERATOR_VERSION = "synthme-2"

#: Action units: name -> list of (centre in face coordinates, displacement direction, sigma).
#: Face coordinates: x, y in [-1, 1] relative to the face ellipse; y grows downwards.
AU_REGIONS: dict[str, list[tuple[tuple[float, float], tuple[float, float], float]]] = {
    "AU1": [((-0.18, -0.42), (0.0, -1.0), 0.10), ((0.18, -0.42), (0.0, -1.0), 0.10)],  # inner brow raiser
    "AU2": [((-0.45, -0.42), (0.0, -1.0), 0.11), ((0.45, -0.42), (0.0, -1.0), 0.11)],  # outer brow raiser
    "AU4": [((-0.22, -0.38), (0.5, 0.85), 0.11), ((0.22, -0.38), (-0.5, 0.85), 0.11)],  # brow lowerer
    "AU5": [((-0.33, -0.24), (0.0, -1.0), 0.07), ((0.33, -0.24), (0.0, -1.0), 0.07)],  # upper lid raiser
    "AU6": [((-0.40, 0.08), (0.0, -1.0), 0.13), ((0.40, 0.08), (0.0, -1.0), 0.13)],  # cheek raiser
    "AU7": [((-0.33, -0.16), (0.0, -1.0), 0.07), ((0.33, -0.16), (0.0, -1.0), 0.07)],  # lid tightener
    "AU9": [((-0.10, -0.02), (0.0, -1.0), 0.09), ((0.10, -0.02), (0.0, -1.0), 0.09)],  # nose wrinkler
    "AU10": [((-0.14, 0.32), (0.0, -1.0), 0.09), ((0.14, 0.32), (0.0, -1.0), 0.09)],  # upper lip raiser
    "AU12": [((-0.30, 0.45), (-0.8, -0.6), 0.10), ((0.30, 0.45), (0.8, -0.6), 0.10)],  # lip corner puller
    "AU14": [((-0.32, 0.47), (-1.0, 0.0), 0.08), ((0.32, 0.47), (1.0, 0.0), 0.08)],  # dimpler
    "AU15": [((-0.30, 0.50), (0.0, 1.0), 0.09), ((0.30, 0.50), (0.0, 1.0), 0.09)],  # lip corner depressor
    "AU17": [((0.0, 0.72), (0.0, -1.0), 0.12)],  # chin raiser
    "AU20": [((-0.34, 0.52), (-0.9, 0.45), 0.09), ((0.34, 0.52), (0.9, 0.45), 0.09)],  # lip stretcher
    "AU26": [((0.0, 0.75), (0.0, 1.0), 0.14)],  # jaw drop
}

#: Emotions and the AU combinations that express them (a subject prefers one; the AUs overlap across classes
#: as in CASME II / SAMM annotations). ``others`` stands for the remaining negative emotions (sadness, fear,
#: contempt, anger), which the MEGC scheme counts as negative and the CASME II-style 5-class scheme as others.
EMOTION_AUS: dict[str, list[tuple[str, ...]]] = {
    "happiness": [("AU6", "AU12"), ("AU12",), ("AU6",)],
    "surprise": [("AU1", "AU2"), ("AU1", "AU2", "AU5"), ("AU1", "AU2", "AU26"), ("AU2",)],
    "disgust": [("AU9",), ("AU4", "AU9"), ("AU4", "AU7"), ("AU10",), ("AU4",)],
    "repression": [("AU14",), ("AU15", "AU17"), ("AU17",), ("AU12", "AU14"), ("AU15",)],
    "others": [("AU4", "AU15"), ("AU1", "AU4"), ("AU14",), ("AU20",), ("AU1", "AU4", "AU20")],
}

#: Label schemes: emotion -> class name. ``megc3`` is the MEGC2019 composite's; ``5class`` is CASME II-style
#: (named as the readers name that scheme).
LABEL_SCHEMES: dict[str, dict[str, str]] = {
    "megc3": {
        "happiness": "positive",
        "surprise": "surprise",
        "disgust": "negative",
        "repression": "negative",
        "others": "negative",
    },
    "5class": {
        "happiness": "happiness",
        "surprise": "surprise",
        "disgust": "disgust",
        "repression": "repression",
        "others": "others",
    },
}

#: Emotion frequencies: the MEGC2019 composite's 250 / 109 / 83 negative / positive / surprise clips, with the
#: negatives split 100 / 90 / 60 between disgust, repression and the other negative emotions.
COMPOSITE_EMOTION_COUNTS = {"happiness": 109, "surprise": 83, "disgust": 100, "repression": 90, "others": 60}
COMPOSITE_EMOTION_SHARE = {k: v / 442 for k, v in COMPOSITE_EMOTION_COUNTS.items()}
_NEGATIVE_EMOTIONS = ("disgust", "repression", "others")

#: The official composite sample list (shipped with the package): subjects and labels, no images.
COMPOSITE_CSV = Path(__file__).resolve().parents[1] / "megc2019_composite.csv"


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of SynthME. Profiles are named presets of this."""

    n_subjects: int = 10
    clips_per_subject: int = 10
    """Clips per subject with ``counts='uniform'`` (ignored with ``counts='composite'``)."""
    counts: str = "uniform"
    """``uniform``: ``clips_per_subject`` per subject with the composite's class shares overall and a skewed
    class mix per subject; ``composite``: the per-subject, per-class counts of the MEGC2019 composite (its
    first ``n_subjects`` subjects; all 68 give exactly 442 clips, 250 / 109 / 83)."""
    size: int = 128
    fps: int = 100
    min_frames: int = 18
    max_frames: int = 60
    amplitude: float = 1.0
    """Peak AU displacement in pixels at 128 px (before per-subject and per-clip scaling); scales with size."""
    max_au_displacement: float = 1.8
    """Cap of one AU's peak displacement in pixels at 128 px (before ``amplitude``): keeps strong styles micro."""
    style_strength: float = 1.0
    """How much subjects differ in expression style (AU geometry, gains, asymmetry, preferred combinations,
    companion AUs). 0 gives every subject the textbook style."""
    identity_strength: float = 1.0
    """How much subjects differ in face geometry and appearance."""
    companion_prob: float = 0.85
    """Probability that a clip shows the subject's companion AU for its emotion."""
    class_skew: float = 0.7
    """Dirichlet concentration of each subject's class mix (``counts='uniform'``); small means skewed."""
    head_motion: float = 0.5
    """Standard deviation of the rigid head translation at apex, in pixels at 128 px."""
    head_rotation: float = 0.4
    """Standard deviation of the in-plane head rotation at apex, in degrees."""
    blink_prob: float = 0.35
    """Probability that a blink happens somewhere in a clip."""
    blink_amplitude: float = 3.0
    """Eyelid displacement of a full blink, in pixels at 128 px."""
    illumination_drift: float = 0.04
    """Relative change of a moving illumination gradient over the clip."""
    noise_std: float = 2.0
    """Sensor noise standard deviation, in grey levels (0-255)."""
    label_scheme: str = "megc3"
    seed: int = 0


PROFILES: dict[str, SynthConfig] = {
    "quick": SynthConfig(),
    "composite": SynthConfig(n_subjects=68, counts="composite", seed=0),
}


@dataclass(frozen=True)
class SubjectParams:
    """Identity and expression style of one synthetic subject."""

    name: str
    seed: int
    face_center: tuple[float, float]
    face_axes: tuple[float, float]
    skin: tuple[float, float, float]
    feature_jitter: tuple[float, ...]
    au_gain: dict[str, float] = field(default_factory=dict)
    asymmetry: float = 0.0
    habit_au: str = "AU6"
    au_shift: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per-AU shift of the region centres in face coordinates (the subject's facial anatomy)."""
    au_angle: dict[str, float] = field(default_factory=dict)
    """Per-AU rotation of the displacement direction, radians (mirrored on the left side)."""
    au_spread: dict[str, float] = field(default_factory=dict)
    """Per-AU scaling of the region size."""
    expressivity: float = 1.0
    preferred: dict[str, int] = field(default_factory=dict)
    """Index into :data:`EMOTION_AUS` of the combination this subject uses most for each emotion."""
    companions: dict[str, str] = field(default_factory=dict)
    """An extra AU this subject tends to co-activate with each emotion (may belong to another class)."""
    class_mix: tuple[float, ...] = ()
    jitteriness: float = 1.0
    """Scale of this subject's head motion."""
    blink_rate: float = 1.0


@dataclass(frozen=True)
class ClipParams:
    """Everything needed to render one clip."""

    subject: SubjectParams
    seed: int
    emotion: str
    aus: tuple[str, ...]
    intensities: tuple[float, ...]
    n_frames: int
    onset: int
    apex: int
    offset: int
    head_shift: tuple[float, float]
    blink_frame: int | None
    size: int
    illumination_drift: float
    noise_std: float
    head_angle: float = 0.0
    """In-plane head rotation at apex, degrees."""
    blink_duration: int = 8
    """Frames from lid start to lid end of a blink."""
    blink_amplitude: float = 3.0
    illumination_angle: float = 0.0


@dataclass
class SynthTruth:
    """Ground truth of one SynthME clip."""

    flow: np.ndarray
    """True onset -> apex displacement, ``(H, W, 2)`` float32 in pixels (OpenCV flow convention); includes head
    motion and blinks."""
    au_flow: np.ndarray
    """The expression part of ``flow`` (head motion and blinks removed), ``(H, W, 2)``."""
    masks: dict[str, np.ndarray]
    """AU region masks, each ``(H, W)`` bool, where that AU moves the skin by > 10 % of its peak."""
    intensities: dict[str, float]

    @property
    def mask(self) -> np.ndarray:
        """Union of all AU masks."""
        out = np.zeros(self.flow.shape[:2], dtype=bool)
        for m in self.masks.values():
            out |= m
        return out

#: What ``convat.data.synth`` re-exports from here.
__all__ = ["AU_REGIONS", "COMPOSITE_CSV", "COMPOSITE_EMOTION_COUNTS", "COMPOSITE_EMOTION_SHARE", "EMOTION_AUS",
           "GENERATOR_VERSION", "LABEL_SCHEMES", "PROFILES", "ClipParams", "SubjectParams", "SynthConfig",
           "SynthTruth"]
