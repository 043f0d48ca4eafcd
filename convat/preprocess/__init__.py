"""Preprocessing: clip records -> onset/apex motion tensors (optical flow u, v and optical strain).

Modules: :mod:`~convat.preprocess.face` (face box on the onset frame), :mod:`~convat.preprocess.apex`
(annotated / middle / motion apex), :mod:`~convat.preprocess.flow` (TV-L1 reference, DIS, Farnebäck, and the
PyTorch Horn–Schunck of :mod:`~convat.preprocess.flow_torch`), :mod:`~convat.preprocess.strain`,
:mod:`~convat.preprocess.pipeline` (the cached pipeline), :mod:`~convat.preprocess.evaluate` (EPE and speed
against SynthME's true flow) and :mod:`~convat.preprocess.plots` (the chapter's figures).
"""
