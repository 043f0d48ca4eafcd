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

The package is split by what each part does: :mod:`~convat.data.synth.spec` (AUs, emotions, label schemes,
profiles and the parameter records), :mod:`~convat.data.synth.render` (faces, displacement fields, warping,
the true flow) and :mod:`~convat.data.synth.population` (subjects, emotion assignment, clip parameters and
:func:`generate`). Everything public is importable from ``convat.data.synth``.
"""

from convat.data.synth import spec
from convat.data.synth.population import (
    _blink_amount,  # noqa: F401  (the data chapter's figure draws the blink curve)
    composite_counts,
    generate,
    resolve_config,
)
from convat.data.synth.render import (
    LazyTruth,
    SynthFrames,
    au_displacement,
    clip_truth,
    render_clip,
    render_frames,
    render_neutral,
    temporal_profile,
)
from convat.data.synth.spec import *  # noqa: F403  (the vocabulary and settings: spec.__all__)

__all__ = [
    *spec.__all__, "LazyTruth", "SynthFrames", "au_displacement", "clip_truth", "composite_counts", "generate",
    "render_clip", "render_frames", "render_neutral", "resolve_config", "temporal_profile",
]
