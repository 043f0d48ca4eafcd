"""Preprocessing: clip records -> onset/apex motion tensors (optical flow u, v and optical strain)."""
