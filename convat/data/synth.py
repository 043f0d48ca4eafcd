"""SynthME: a procedural micro-expression dataset with ground truth.

Licence-restricted datasets (CASME II, SAMM, SMIC) never enter the repository, so every chapter and test
runs on clips this module renders deterministically from a seed. A subject is a procedural face (geometry,
skin tone, texture) with its own expression style; a clip moves that face by FACS action units (AUs)
rendered as smooth local displacement fields that follow an onset -> apex -> offset temporal profile.

Each frame is a backward warp of the subject's neutral face, ``I_t(y) = I_0(y - s(t) D(y) - h(t))``, with
``D`` the AU displacement field, ``s`` the temporal profile and ``h`` a small rigid head translation. The true
onset -> apex flow (OpenCV convention: the point at ``x`` in the onset frame moves to ``x + f(x)`` in the apex
frame) is obtained by solving that warp exactly with fixed-point iterations, so tests can measure optical
flow end-point error against it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from convat.data.records import ClipRecord, FrameSource

GENERATOR_VERSION = "synthme-1"

#: Action units: name -> list of (centre in face coordinates, displacement direction, sigma).
#: Face coordinates: x, y in [-1, 1] relative to the face ellipse; y grows downwards.
AU_REGIONS: dict[str, list[tuple[tuple[float, float], tuple[float, float], float]]] = {
    "AU1": [((-0.18, -0.42), (0.0, -1.0), 0.10), ((0.18, -0.42), (0.0, -1.0), 0.10)],
    "AU2": [((-0.45, -0.42), (0.0, -1.0), 0.11), ((0.45, -0.42), (0.0, -1.0), 0.11)],
    "AU4": [((-0.22, -0.38), (0.5, 0.85), 0.11), ((0.22, -0.38), (-0.5, 0.85), 0.11)],
    "AU5": [((-0.33, -0.24), (0.0, -1.0), 0.07), ((0.33, -0.24), (0.0, -1.0), 0.07)],
    "AU6": [((-0.40, 0.08), (0.0, -1.0), 0.13), ((0.40, 0.08), (0.0, -1.0), 0.13)],
    "AU7": [((-0.33, -0.16), (0.0, -1.0), 0.07), ((0.33, -0.16), (0.0, -1.0), 0.07)],
    "AU9": [((-0.10, -0.02), (0.0, -1.0), 0.09), ((0.10, -0.02), (0.0, -1.0), 0.09)],
    "AU12": [((-0.30, 0.45), (-0.8, -0.6), 0.10), ((0.30, 0.45), (0.8, -0.6), 0.10)],
    "AU14": [((-0.32, 0.47), (-1.0, 0.0), 0.08), ((0.32, 0.47), (1.0, 0.0), 0.08)],
    "AU15": [((-0.30, 0.50), (0.0, 1.0), 0.09), ((0.30, 0.50), (0.0, 1.0), 0.09)],
    "AU17": [((0.0, 0.72), (0.0, -1.0), 0.12)],
    "AU26": [((0.0, 0.75), (0.0, 1.0), 0.14)],
}

#: Emotion classes and the AU combinations that express them (one is drawn per clip).
EMOTION_AUS: dict[str, list[tuple[str, ...]]] = {
    "happiness": [("AU6", "AU12"), ("AU12",)],
    "surprise": [("AU1", "AU2"), ("AU1", "AU2", "AU5"), ("AU1", "AU2", "AU26")],
    "disgust": [("AU9",), ("AU4", "AU9"), ("AU4", "AU7")],
    "repression": [("AU14",), ("AU15", "AU17"), ("AU15",)],
    "sadness": [("AU4", "AU15"), ("AU1", "AU4")],
}

#: Label schemes: emotion -> class name.
LABEL_SCHEMES: dict[str, dict[str, str]] = {
    "megc3": {
        "happiness": "positive",
        "surprise": "surprise",
        "disgust": "negative",
        "repression": "negative",
        "sadness": "negative",
    },
    "five": {
        "happiness": "happiness",
        "surprise": "surprise",
        "disgust": "disgust",
        "repression": "repression",
        "sadness": "others",
    },
}

#: Emotion frequencies: the MEGC2019 composite's 57 / 25 / 19 % negative / positive / surprise split.
COMPOSITE_EMOTION_SHARE = {
    "happiness": 109 / 442,
    "surprise": 83 / 442,
    "disgust": 100 / 442,
    "repression": 90 / 442,
    "sadness": 60 / 442,
}


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of SynthME. Profiles are named presets of this."""

    n_subjects: int = 10
    clips_per_subject: int = 10
    size: int = 128
    fps: int = 100
    min_frames: int = 18
    max_frames: int = 30
    amplitude: float = 1.2
    """Peak AU displacement in pixels (before per-subject and per-clip scaling)."""
    style_strength: float = 0.5
    """How much each subject's habits (AU gains, asymmetry, idiosyncratic extra AU) vary."""
    head_motion: float = 0.3
    """Standard deviation of the rigid head translation at apex, in pixels."""
    blink_prob: float = 0.3
    illumination_drift: float = 0.03
    noise_std: float = 2.0
    """Sensor noise standard deviation, in grey levels (0-255)."""
    label_scheme: str = "megc3"
    seed: int = 0


PROFILES: dict[str, SynthConfig] = {
    "quick": SynthConfig(),
    "composite": SynthConfig(n_subjects=68, clips_per_subject=7, seed=0),
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


@dataclass
class SynthTruth:
    """Ground truth of one SynthME clip."""

    flow: np.ndarray
    """True onset -> apex displacement, ``(H, W, 2)`` float32 in pixels (OpenCV flow convention)."""
    au_flow: np.ndarray
    """The expression part of ``flow`` (head motion removed), ``(H, W, 2)``."""
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


def _face_grid(subject: SubjectParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates (u, v) in [-1, 1] inside the face ellipse for every pixel."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = subject.face_center
    ax, ay = subject.face_axes
    return (xs - cx * size) / (ax * size), (ys - cy * size) / (ay * size)


def render_neutral(subject: SubjectParams, size: int) -> np.ndarray:
    """The subject's neutral face, ``(size, size, 3)`` float32 in [0, 255]."""
    rng = np.random.default_rng(subject.seed)
    u, v = _face_grid(subject, size)
    j = subject.feature_jitter

    def blob(cu: float, cv: float, su: float, sv: float) -> np.ndarray:
        return np.exp(-(((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))

    face = 1.0 / (1.0 + np.exp((u**2 + v**2 - 1.0) * 12.0))
    shade = np.zeros_like(u)
    for side in (-1, 1):
        shade += 0.9 * blob(side * (0.33 + j[0]), -0.20 + j[1], 0.12, 0.05)  # eyes
        shade += 0.6 * blob(side * (0.32 + j[0]), -0.36 + j[2], 0.20, 0.035)  # brows
        shade += 0.25 * blob(side * (0.40 + j[0]), 0.10, 0.15, 0.12)  # cheeks
    shade += 0.35 * blob(0.0, 0.05 + j[3], 0.07, 0.16)  # nose
    shade += 0.7 * blob(0.0, 0.47 + j[4], 0.30 + j[5], 0.045)  # mouth
    shade += 0.2 * blob(0.0, 0.75, 0.2, 0.08)  # chin

    texture = rng.normal(0, 1, (size // 4 + 2, size // 4 + 2)).astype(np.float32)
    import cv2

    texture = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2)

    skin = np.array(subject.skin, dtype=np.float32)
    background = np.array([90.0, 100.0, 110.0], dtype=np.float32)
    luminance = 1.0 - 0.55 * shade + 0.06 * texture + 0.08 * fine
    img = face[..., None] * skin * luminance[..., None] + (1 - face[..., None]) * background
    return np.clip(img, 0, 255).astype(np.float32)


def au_displacement(
    subject: SubjectParams, aus: tuple[str, ...], intensities: tuple[float, ...], size: int, amplitude: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Displacement field ``D`` (``(H, W, 2)``, pixels) of the AUs at apex, and each AU's magnitude map."""
    u, v = _face_grid(subject, size)
    total = np.zeros((size, size, 2), dtype=np.float32)
    per_au: dict[str, np.ndarray] = {}
    for au, intensity in zip(aus, intensities, strict=True):
        field_au = np.zeros_like(total)
        for (cu, cv), (du, dv), sigma in AU_REGIONS[au]:
            side_gain = 1.0 + subject.asymmetry * np.sign(cu)
            weight = np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sigma**2))
            scale = amplitude * intensity * subject.au_gain.get(au, 1.0) * side_gain
            field_au[..., 0] += scale * du * weight
            field_au[..., 1] += scale * dv * weight
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

    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return cv2.remap(
        image,
        xs - displacement[..., 0],
        ys - displacement[..., 1],
        interpolation=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT101,
    )


def _forward_flow(displacement: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Solve ``f(x) = D(x + f(x))``: where the backward warp by ``D`` sends each source pixel."""
    import cv2

    size = displacement.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = displacement.copy()
    for _ in range(iterations):
        flow = cv2.remap(
            displacement, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return flow


def _clip_fields(p: ClipParams, amplitude_scale: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return au_displacement(p.subject, p.aus, p.intensities, p.size, amplitude_scale)


def render_clip(p: ClipParams) -> tuple[np.ndarray, SynthTruth]:
    """All frames of a clip as ``(T, H, W, 3)`` uint8, and its ground truth."""
    rng = np.random.default_rng(p.seed)
    neutral = render_neutral(p.subject, p.size)
    au_field, per_au = _clip_fields(p)
    profile = temporal_profile(p.n_frames, p.onset, p.apex, p.offset)
    head_t = np.clip((np.arange(p.n_frames) - p.onset) / max(p.apex - p.onset, 1), 0, None)
    head = np.outer(head_t, np.asarray(p.head_shift, dtype=np.float32))
    gain = 1.0 + p.illumination_drift * np.linspace(-1, 1, p.n_frames) * rng.choice([-1, 1])

    u, v = _face_grid(p.subject, p.size)
    eyes = np.zeros((p.size, p.size), dtype=np.float32)
    for side in (-1, 1):
        eyes += np.exp(-(((u - side * 0.33) / 0.14) ** 2 + ((v + 0.20) / 0.06) ** 2))

    frames = np.empty((p.n_frames, p.size, p.size, 3), dtype=np.uint8)
    for t in range(p.n_frames):
        disp = profile[t] * au_field + head[t]
        img = _warp(neutral, disp.astype(np.float32))
        if p.blink_frame is not None and abs(t - p.blink_frame) <= 2:
            closure = 1.0 - abs(t - p.blink_frame) / 3.0
            img = img * (1 - closure * eyes[..., None]) + closure * eyes[..., None] * np.array(
                p.subject.skin, dtype=np.float32
            ) * 0.8
        img = img * gain[t] + rng.normal(0, p.noise_std, img.shape)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    onset_disp = profile[p.onset] * au_field + head[p.onset]
    apex_disp = profile[p.apex] * au_field + head[p.apex]
    # onset frame is the neutral face moved by onset_disp (zero at onset); the flow onset->apex is the
    # forward flow of the apex displacement relative to the onset one.
    flow = _forward_flow((apex_disp - onset_disp).astype(np.float32))
    au_flow = _forward_flow((profile[p.apex] * au_field).astype(np.float32))
    masks = {}
    for au, mag in per_au.items():
        peak = float(mag.max())
        masks[au] = mag > 0.1 * peak if peak > 0 else np.zeros_like(mag, dtype=bool)
    truth = SynthTruth(
        flow=flow, au_flow=au_flow, masks=masks, intensities=dict(zip(p.aus, p.intensities, strict=True))
    )
    return frames, truth


@dataclass(frozen=True)
class SynthFrames(FrameSource):
    """Frames of a SynthME clip, rendered on demand (nothing is stored on disk)."""

    params: ClipParams

    def __len__(self) -> int:
        return self.params.n_frames

    def load(self, indices: list[int] | None = None) -> np.ndarray:
        frames, _ = render_clip(self.params)
        return frames if indices is None else frames[list(indices)]

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
            self._value = render_clip(self._params)[1]
        return self._value

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


def _make_subject(index: int, rng: np.random.Generator, config: SynthConfig) -> SubjectParams:
    tone = rng.uniform(0.45, 1.0)
    skin = (235 * tone, 190 * tone * rng.uniform(0.9, 1.05), 160 * tone * rng.uniform(0.85, 1.05))
    gains = {au: float(np.exp(rng.normal(0, config.style_strength))) for au in AU_REGIONS}
    return SubjectParams(
        name=f"s{index + 1:02d}",
        seed=int(rng.integers(2**31)),
        face_center=(0.5 + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.02)),
        face_axes=(rng.uniform(0.36, 0.42), rng.uniform(0.44, 0.50)),
        skin=skin,
        feature_jitter=tuple(float(x) for x in rng.normal(0, 0.02, 6)),
        au_gain=gains,
        asymmetry=float(rng.normal(0, 0.3 * config.style_strength)),
        habit_au=str(rng.choice(list(AU_REGIONS))),
    )


def _emotion_sequence(n: int, rng: np.random.Generator) -> list[str]:
    """Emotions for ``n`` clips with the composite's shares (largest-remainder rounding, shuffled)."""
    names = list(COMPOSITE_EMOTION_SHARE)
    shares = np.array([COMPOSITE_EMOTION_SHARE[k] for k in names])
    counts = np.floor(shares * n).astype(int)
    for i in np.argsort(-(shares * n - counts))[: n - counts.sum()]:
        counts[i] += 1
    seq = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    rng.shuffle(seq)
    return seq


def generate(config: SynthConfig | str = "quick", **overrides) -> list[ClipRecord]:
    """Clip records of a SynthME dataset: a profile name or a :class:`SynthConfig`, plus overrides.

    >>> records = generate("quick", n_subjects=3, clips_per_subject=2)
    >>> len(records)
    6
    """
    if isinstance(config, str):
        if config not in PROFILES:
            raise ValueError(f"unknown SynthME profile {config!r}; choose one of {sorted(PROFILES)}")
        config = PROFILES[config]
    config = replace(config, **overrides)
    if config.label_scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {config.label_scheme!r}; choose one of {sorted(LABEL_SCHEMES)}")
    rng = np.random.default_rng(config.seed)
    subjects = [_make_subject(i, rng, config) for i in range(config.n_subjects)]
    emotions = _emotion_sequence(config.n_subjects * config.clips_per_subject, rng)
    records = []
    for s_index, subject in enumerate(subjects):
        for c_index in range(config.clips_per_subject):
            emotion = emotions[s_index * config.clips_per_subject + c_index]
            options = EMOTION_AUS[emotion]
            aus = options[int(rng.integers(len(options)))]
            if rng.random() < 0.5 * config.style_strength and subject.habit_au not in aus:
                aus = (*aus, subject.habit_au)  # the subject's idiosyncratic extra AU
            intensities = tuple(float(rng.uniform(0.5, 1.0)) for _ in aus)
            n_frames = int(rng.integers(config.min_frames, config.max_frames + 1))
            onset = int(rng.integers(1, 4))
            offset = n_frames - int(rng.integers(1, 4))
            apex = int(rng.integers(onset + (offset - onset) // 3, onset + 2 * (offset - onset) // 3 + 1))
            params = ClipParams(
                subject=subject,
                seed=int(rng.integers(2**31)),
                emotion=emotion,
                aus=aus,
                intensities=tuple(i * config.amplitude for i in intensities),
                n_frames=n_frames,
                onset=onset,
                apex=apex,
                offset=offset,
                head_shift=tuple(float(x) for x in rng.normal(0, config.head_motion, 2)),
                blink_frame=int(rng.integers(0, n_frames)) if rng.random() < config.blink_prob else None,
                size=config.size,
                illumination_drift=config.illumination_drift,
                noise_std=config.noise_std,
            )
            records.append(
                ClipRecord(
                    dataset="synthme",
                    subject=subject.name,
                    clip=f"{subject.name}_{c_index + 1:02d}",
                    label=LABEL_SCHEMES[config.label_scheme][emotion],
                    onset=onset,
                    apex=apex,
                    offset=offset,
                    frames=SynthFrames(params),
                    aus=aus,
                    emotion=emotion,
                    truth=LazyTruth(params),
                    extra={"fps": config.fps},
                )
            )
    return records
