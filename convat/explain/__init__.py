"""Explanations of trained models, scored against SynthME's true action-unit regions.

* :mod:`~convat.explain.attribution` -- Captum Saliency, Integrated Gradients (zero-motion baseline),
  SmoothGrad, token-aligned Occlusion and Grad-CAM on the convolutional stem, for any model, one function.
* :mod:`~convat.explain.attention` -- attention of every block and attention rollout.
* :mod:`~convat.explain.faithfulness` -- mass inside the true AU region, pointing game, random baseline,
  deletion curves.
* :mod:`~convat.explain.fold` -- the LOSO model that did not see a subject, and that subject's truth.
* :mod:`~convat.explain.plots` -- overlays on the apex frame and the flow field, galleries.
"""

from convat.explain.attention import attention_maps, block_maps, has_attention, rollout, rollout_matrix
from convat.explain.attribution import METHODS, attribute, cam_layer, occlusion_window, token_grid
from convat.explain.explain import available_models, explain_maps, score_fold, summary_table
from convat.explain.faithfulness import (
    deletion_auc,
    deletion_curve,
    deletion_table,
    faithfulness_table,
    mass_in_mask,
    motion_magnitude,
    pointing_game,
    random_maps,
)
from convat.explain.fold import FoldModel, apex_frames, fold_model, truth_masks

__all__ = [
    "METHODS", "FoldModel", "apex_frames", "attention_maps", "attribute", "available_models", "block_maps",
    "cam_layer", "deletion_auc", "deletion_curve", "deletion_table", "explain_maps",
    "faithfulness_table", "fold_model", "has_attention", "mass_in_mask", "motion_magnitude", "occlusion_window",
    "pointing_game", "random_maps", "rollout", "rollout_matrix", "score_fold", "summary_table", "token_grid",
    "truth_masks",
]
