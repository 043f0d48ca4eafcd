"""Preprocessing: clip records -> onset/apex motion tensors (optical flow u, v and optical strain).

Modules: :mod:`~convat.preprocess.detectors` (dlib HOG + 68 landmarks, or the Haar fallback; the choice of
one face by confidence and plausibility), :mod:`~convat.preprocess.face` (one aligned face crop per clip),
:mod:`~convat.preprocess.face_eval` (detectors compared on library photographs and synthetic frames),
:mod:`~convat.preprocess.apex` (annotated / middle / motion apex), :mod:`~convat.preprocess.flow` (TV-L1
reference, DIS, Farnebäck, and the PyTorch Horn–Schunck of :mod:`~convat.preprocess.flow_torch`),
:mod:`~convat.preprocess.strain`, :mod:`~convat.preprocess.pipeline` (the cached pipeline),
:mod:`~convat.preprocess.evaluate` (EPE and speed against SynthME's true flow) and
:mod:`~convat.preprocess.plots` (the chapter's figures).
"""
