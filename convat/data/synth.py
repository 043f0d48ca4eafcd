"""SynthME: a procedural micro-expression dataset with ground truth.

Licence-restricted datasets (CASME II, SAMM, SMIC) never enter the repository, so every chapter and test
runs on clips this module renders deterministically from a seed. A subject is a procedural face (geometry,
skin tone, texture, feature sizes) with its own expression style; a clip moves that face by FACS action units
(AUs) rendered as smooth local displacement fields that follow an onset -> apex -> offset temporal profile.

What makes it a real learning problem rather than a toy (see ``DESIGN.md`` section 2.1):

* **Per-subject style.** Each subject has its own AU geometry (centres, directions and spreads shifted from the
  textbook positions), AU gains, left/right asymmetry, overall expressivity, a preferred AU combination per
  emotion and an idiosyncratic companion AU per emotion that may belong to another class. A model that has
  seen a subject's other clips (a random split) can use all of this; under leave-one-subject-out it cannot.
* **Overlapping AUs.** As in the real data, classes share AUs (AU4 in disgust and in other negative emotions,
  AU12 in happiness and in repressed smiles, AU1 in surprise and in sadness), so no single AU decides a class.
* **Micro amplitude.** Peak displacements of a fraction of a pixel to about two pixels at 128 px.
* **Nuisances.** Rigid head motion (translation and in-plane rotation) that is often as large as the
  expression, eye blinks (several pixels of lid motion, unrelated to the label), moving illumination, sensor
  noise and clip length that varies with the expression's duration.

Each frame is a backward warp of the subject's neutral face, ``I_t(y) = I_0(y - D_t(y))``, with ``D_t`` the sum
of the AU field scaled by the temporal profile, the head motion and the blink field. The true onset -> apex flow
(OpenCV convention: the point at ``x`` in the onset frame moves to ``x + f(x)`` in the apex frame) is obtained
by inverting those warps exactly with fixed-point iterations, so tests can measure optical-flow end-point
error against it. Frames are rendered on demand, frame by frame, so loading the onset and apex frames of a
clip costs two warps.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from convat.data.records import ClipRecord, FrameSource

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

#: Label schemes: emotion -> class name. ``megc3`` is the MEGC2019 composite's; ``five`` is CASME II-style.
LABEL_SCHEMES: dict[str, dict[str, str]] = {
    "megc3": {
        "happiness": "positive",
        "surprise": "surprise",
        "disgust": "negative",
        "repression": "negative",
        "others": "negative",
    },
    "five": {
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
COMPOSITE_CSV = Path(__file__).with_name("megc2019_composite.csv")


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


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _face_grid(subject: SubjectParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates (u, v), in [-1, 1] inside the face ellipse, of every pixel."""
    xs, ys = _grid(size)
    cx, cy = subject.face_center
    ax, ay = subject.face_axes
    return (xs - cx * size) / (ax * size), (ys - cy * size) / (ay * size)


def render_neutral(subject: SubjectParams, size: int) -> np.ndarray:
    """The subject's neutral face, ``(size, size, 3)`` float32 in [0, 255] (memoised for the last subjects)."""
    key = (repr(subject), size)
    image = _NEUTRAL_CACHE.pop(key, None)
    if image is None:
        image = _render_neutral(subject, size)
    _NEUTRAL_CACHE[key] = image  # most recently used last
    while len(_NEUTRAL_CACHE) > 16:
        _NEUTRAL_CACHE.pop(next(iter(_NEUTRAL_CACHE)))
    return image.copy()


_NEUTRAL_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _render_neutral(subject: SubjectParams, size: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(subject.seed)
    u, v = _face_grid(subject, size)
    j = subject.feature_jitter
    j = j + (0.0,) * (12 - len(j))

    def blob(cu: float, cv: float, su: float, sv: float) -> np.ndarray:
        return np.exp(-(((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))

    face = 1.0 / (1.0 + np.exp((u**2 + v**2 - 1.0) * 12.0))
    shade = np.zeros_like(u)
    eye_w, brow_dark, mouth_dark = 0.12 * (1 + 2 * j[6]), 0.6 * (1 + 4 * j[7]), 0.7 * (1 + 4 * j[8])
    for side in (-1, 1):
        shade += 0.9 * blob(side * (0.33 + j[0]), -0.20 + j[1], eye_w, 0.05)  # eyes
        shade += brow_dark * blob(side * (0.32 + j[0]), -0.36 + j[2], 0.20, 0.035 * (1 + 2 * j[9]))  # brows
        shade += 0.25 * blob(side * (0.40 + j[0]), 0.10, 0.15, 0.12)  # cheeks
        shade += 0.30 * blob(side * (0.09 + j[10]), 0.22 + j[3], 0.035, 0.03)  # nostrils
        shade += 0.15 * blob(side * (0.22 + j[0]), 0.30, 0.03, 0.12)  # nasolabial folds
    shade += 0.35 * blob(0.0, 0.05 + j[3], 0.07, 0.16)  # nose
    shade += mouth_dark * blob(0.0, 0.47 + j[4], 0.30 + j[5], 0.045)  # mouth
    shade += 0.2 * blob(0.0, 0.75, 0.2, 0.08)  # chin
    shade += 0.5 * (1 + 4 * j[11]) * (v < -0.75 + 0.1 * np.cos(3 * u)) * face  # hairline

    texture = rng.normal(0, 1, (size // 4 + 2, size // 4 + 2)).astype(np.float32)
    texture = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2 * size / 128)

    skin = np.array(subject.skin, dtype=np.float32)
    background = np.array([90.0, 100.0, 110.0], dtype=np.float32) * rng.uniform(0.7, 1.3)
    luminance = 1.0 - 0.55 * np.clip(shade, 0, 1.4) + 0.06 * texture + 0.08 * fine
    img = face[..., None] * skin * luminance[..., None] + (1 - face[..., None]) * background
    return np.clip(img, 0, 255).astype(np.float32)


def au_displacement(
    subject: SubjectParams, aus: tuple[str, ...], intensities: tuple[float, ...], size: int, amplitude: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Displacement field ``D`` (``(H, W, 2)``, pixels) of the AUs at apex, and each AU's magnitude map.

    ``intensities`` are in pixels at 128 px; ``amplitude`` multiplies them (and the field scales with ``size``).
    """
    u, v = _face_grid(subject, size)
    total = np.zeros((size, size, 2), dtype=np.float32)
    per_au: dict[str, np.ndarray] = {}
    for au, intensity in zip(aus, intensities, strict=True):
        field_au = np.zeros_like(total)
        su, sv = subject.au_shift.get(au, (0.0, 0.0))
        angle = subject.au_angle.get(au, 0.0)
        spread = subject.au_spread.get(au, 1.0)
        for (cu, cv), (du, dv), sigma in AU_REGIONS[au]:
            side = float(np.sign(cu))
            cu_s, cv_s = cu + (su * side if side else su), cv + sv
            a = angle * (side if side else 1.0)
            du_s, dv_s = du * np.cos(a) - dv * np.sin(a), du * np.sin(a) + dv * np.cos(a)
            sigma_s = sigma * spread
            side_gain = 1.0 + subject.asymmetry * side
            weight = np.exp(-((u - cu_s) ** 2 + (v - cv_s) ** 2) / (2 * sigma_s**2))
            scale = amplitude * intensity * subject.au_gain.get(au, 1.0) * side_gain * size / 128
            field_au[..., 0] += scale * du_s * weight
            field_au[..., 1] += scale * dv_s * weight
        per_au[au] = np.linalg.norm(field_au, axis=-1)
        total += field_au
    return total, per_au


def temporal_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 profile (raised cosine) with its peak at the apex frame."""
    t = np.arange(n_frames, dtype=np.float32)
    s = np.zeros(n_frames, dtype=np.float32)
    rise = (t >= onset) & (t <= apex)
    s[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / max(apex - onset, 1))
    fall = (t > apex) & (t <= offset)
    s[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / max(offset - apex, 1))
    return s


def _warp(image: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(y) = image(y - displacement(y))``."""
    import cv2

    xs, ys = _grid(image.shape[0])
    return cv2.remap(
        image,
        xs - displacement[..., 0],
        ys - displacement[..., 1],
        interpolation=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT101,
    )


def _forward_flow(displacement: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Solve ``g(p) = D(p + g(p))``: where the backward warp by ``D`` sends the content of pixel ``p``."""
    import cv2

    xs, ys = _grid(displacement.shape[0])
    flow = displacement.copy()
    for _ in range(iterations):
        flow = cv2.remap(
            displacement, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return flow


def _flow_between(d_from: np.ndarray, d_to: np.ndarray) -> np.ndarray:
    """Exact flow from the frame warped by ``d_from`` to the frame warped by ``d_to`` (both backward warps).

    The content at ``x`` in the first frame came from ``p = x - d_from(x)``; it lies at ``p + g_to(p)`` in the
    second, with ``g_to`` the forward flow of ``d_to``.
    """
    import cv2

    xs, ys = _grid(d_from.shape[0])
    g_to = _forward_flow(d_to)
    px, py = xs - d_from[..., 0], ys - d_from[..., 1]
    g_at_p = cv2.remap(g_to, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (g_at_p - d_from).astype(np.float32)


def _head_field(p: ClipParams, amount: float) -> np.ndarray:
    """Rigid head motion at a fraction ``amount`` of its apex value: translation plus in-plane rotation."""
    xs, ys = _grid(p.size)
    cx, cy = p.subject.face_center[0] * p.size, p.subject.face_center[1] * p.size
    a = np.deg2rad(p.head_angle * amount)
    rx, ry = xs - cx, ys - cy
    dx = np.cos(a) * rx - np.sin(a) * ry - rx + amount * p.head_shift[0] * p.size / 128
    dy = np.sin(a) * rx + np.cos(a) * ry - ry + amount * p.head_shift[1] * p.size / 128
    return np.dstack([dx, dy]).astype(np.float32)


def _blink_field(p: ClipParams) -> np.ndarray:
    """Eyelid displacement of a fully closed eye: the skin above each eye slides down over it."""
    u, v = _face_grid(p.subject, p.size)
    j = p.subject.feature_jitter
    weight = np.zeros_like(u)
    for side in (-1, 1):
        weight += np.exp(-(((u - side * (0.33 + j[0])) / 0.16) ** 2 + ((v - (-0.24 + j[1])) / 0.09) ** 2))
    out = np.zeros((p.size, p.size, 2), dtype=np.float32)
    out[..., 1] = p.blink_amplitude * p.size / 128 * weight
    return out


def _blink_amount(p: ClipParams, t: int) -> float:
    if p.blink_frame is None:
        return 0.0
    half = max(p.blink_duration / 2, 1.0)
    x = (t - p.blink_frame) / half
    return float(0.5 + 0.5 * np.cos(np.pi * x)) if abs(x) < 1 else 0.0


@dataclass
class _ClipFields:
    au_field: np.ndarray
    per_au: dict[str, np.ndarray]
    profile: np.ndarray
    head_t: np.ndarray
    blink: np.ndarray


def _clip_fields(p: ClipParams) -> _ClipFields:
    au_field, per_au = au_displacement(p.subject, p.aus, p.intensities, p.size, 1.0)
    profile = temporal_profile(p.n_frames, p.onset, p.apex, p.offset)
    head_t = np.clip((np.arange(p.n_frames) - p.onset) / max(p.apex - p.onset, 1), 0, None).astype(np.float32)
    blink = _blink_field(p) if p.blink_frame is not None else np.zeros((p.size, p.size, 2), np.float32)
    return _ClipFields(au_field, per_au, profile, head_t, blink)


def _displacement(p: ClipParams, f: _ClipFields, t: int, expression: bool = True, nuisance: bool = True):
    d = np.zeros((p.size, p.size, 2), dtype=np.float32)
    if expression:
        d += f.profile[t] * f.au_field
    if nuisance:
        d += _head_field(p, float(f.head_t[t]))
        amount = _blink_amount(p, t)
        if amount:
            d += amount * f.blink
    return d


def render_frames(p: ClipParams, indices: list[int] | None = None) -> np.ndarray:
    """Frames ``indices`` (default: all) of a clip as ``(T, H, W, 3)`` uint8; each frame has its own noise."""
    indices = list(range(p.n_frames)) if indices is None else [int(i) for i in indices]
    for t in indices:
        if not 0 <= t < p.n_frames:
            raise IndexError(f"frame {t} outside clip of {p.n_frames} frames")
    neutral = render_neutral(p.subject, p.size)
    f = _clip_fields(p)
    u, v = _face_grid(p.subject, p.size)
    light = np.cos(p.illumination_angle) * u + np.sin(p.illumination_angle) * v
    frames = np.empty((len(indices), p.size, p.size, 3), dtype=np.uint8)
    for k, t in enumerate(indices):
        img = _warp(neutral, _displacement(p, f, t))
        drift = p.illumination_drift * (2 * t / max(p.n_frames - 1, 1) - 1)
        gain = 1.0 + drift * (0.5 + light)
        rng = np.random.default_rng([p.seed, t])
        img = img * gain[..., None] + rng.normal(0, p.noise_std, img.shape)
        frames[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames


def clip_truth(p: ClipParams) -> SynthTruth:
    """Ground truth of a clip: exact onset -> apex flow (all motion and expression only) and AU masks."""
    f = _clip_fields(p)
    flow = _flow_between(_displacement(p, f, p.onset), _displacement(p, f, p.apex))
    au_flow = _forward_flow(_displacement(p, f, p.apex, nuisance=False))
    masks = {}
    for au, mag in f.per_au.items():
        peak = float(mag.max())
        masks[au] = mag > 0.1 * peak if peak > 0 else np.zeros_like(mag, dtype=bool)
    return SynthTruth(flow=flow, au_flow=au_flow, masks=masks, intensities=dict(zip(p.aus, p.intensities, strict=True)))


def render_clip(p: ClipParams) -> tuple[np.ndarray, SynthTruth]:
    """All frames of a clip as ``(T, H, W, 3)`` uint8, and its ground truth."""
    return render_frames(p), clip_truth(p)


@dataclass(frozen=True)
class SynthFrames(FrameSource):
    """Frames of a SynthME clip, rendered on demand (nothing is stored on disk)."""

    params: ClipParams

    def __len__(self) -> int:
        return self.params.n_frames

    def load(self, indices: list[int] | None = None) -> np.ndarray:
        return render_frames(self.params, indices)

    def fingerprint(self) -> str:
        blob = repr((GENERATOR_VERSION, asdict(self.params)))
        return hashlib.sha256(blob.encode()).hexdigest()


class LazyTruth:
    """Ground truth rendered on first access, so building the record list stays instant."""

    def __init__(self, params: ClipParams):
        self._params = params
        self._value: SynthTruth | None = None

    def get(self) -> SynthTruth:
        if self._value is None:
            self._value = clip_truth(self._params)
        return self._value

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


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
