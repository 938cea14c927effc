"""First Order Motion Model (Siarohin et al., NeurIPS 2019), re-implemented to load the official
checkpoints and match the reference numerically (see ../shared/fomm/NOTES.md).

Modules: ``config`` (FommConfig, vox-256 defaults) · ``blocks`` (shared layers, Keypoints,
inv2x2) · ``keypoint_detector`` · ``dense_motion`` · ``generator`` · ``motion`` (relative
normalisation, hull area, best frame) · ``weights`` (safe checkpoint loading) · ``engine``
(FommEngine). Nothing heavy is imported here.
"""
