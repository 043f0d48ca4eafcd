"""Rendering a SynthME clip: the neutral face of a subject, AU displacement fields under an onset -> apex -> offset
profile, head motion and blinks, backward warping of frames, and the exact onset -> apex flow and AU masks."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from convat.data.records import FrameSource
from convat.data.synth.spec import AU_REGIONS, GENERATOR_VERSION, ClipParams, SubjectParams, SynthTruth


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
