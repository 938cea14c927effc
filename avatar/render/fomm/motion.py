"""Relative-motion normalisation of FOMM keypoints (upstream ``animate.normalize_kp``), per sample.

Everything here is branch-free tensor code (traceable); flags are Python booleans.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .blocks import Keypoints, inv2x2


def convex_hull_area(points: Tensor) -> Tensor:
    """Area of the convex hull of each point set: (B, N, 2) → (B,).

    Branch-free O(N³) formulation: the directed edge i→j is a counter-clockwise hull edge when
    every point lies strictly left of it or on the segment itself; the hull area is the
    shoelace sum over those edges. Exactly collinear and duplicate points are handled
    (duplicates count once); equals scipy's ``ConvexHull(p).volume`` up to rounding.
    """
    p = points - points.mean(dim=1, keepdim=True)  # centring keeps the shoelace terms small
    n = p.shape[1]
    pi = p.unsqueeze(2)  # (B, N, 1, 2) edge start i
    d = p.unsqueeze(1) - pi  # (B, N, N, 2) edge i→j
    r = (p.unsqueeze(1) - pi).unsqueeze(2)  # (B, N, 1, N, 2) vector i→k
    de = d.unsqueeze(3)  # (B, N, N, 1, 2)
    cross = de[..., 0] * r[..., 1] - de[..., 1] * r[..., 0]  # (B, N, N, N) [b, i, j, k]
    dot = de[..., 0] * r[..., 0] + de[..., 1] * r[..., 1]
    len2 = (d**2).sum(-1).unsqueeze(-1)
    idx = torch.arange(n, device=p.device)
    is_end = (idx.view(n, 1, 1) == idx.view(1, 1, n)) | (idx.view(1, n, 1) == idx.view(1, 1, n))  # k ∈ {i, j}
    on_segment = (cross == 0) & (dot >= 0) & (dot <= len2)
    edge = ((cross > 0) | on_segment | is_end).all(dim=-1)  # (B, N, N)
    # among coincident points only the first may start or end an edge
    same = (p.unsqueeze(2) == p.unsqueeze(1)).all(-1)  # (B, N, N) [b, i, j]
    earlier = idx.view(1, n) < idx.view(n, 1)  # [i, j]: j < i
    first = ~(same & earlier).any(-1)  # (B, N)
    edge = edge & first.unsqueeze(2) & first.unsqueeze(1) & (idx.view(n, 1) != idx.view(1, n))
    term = pi[..., 0] * p.unsqueeze(1)[..., 1] - p.unsqueeze(1)[..., 0] * pi[..., 1]  # x_i·y_j − x_j·y_i
    return 0.5 * (term * edge.to(term.dtype)).sum(dim=(1, 2))


def movement_scale(kp_source: Tensor, kp_driving_initial: Tensor, eps: float = 1e-8) -> Tensor:
    """sqrt(hull area of source keypoints / hull area of reference keypoints), per sample: (B, K, 2) ×2 → (B,)."""
    src = convex_hull_area(kp_source.float())
    ref = convex_hull_area(kp_driving_initial.float())
    return torch.sqrt(src.clamp(min=0) / ref.clamp(min=eps))


def normalize_kp(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    *,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
) -> Keypoints:
    """Driving keypoints re-expressed relative to the source, each sample with its own scale.

    All keypoints are batched (B, K, ...); sample b uses kp_source[b] and kp_driving_initial[b].
    Relative mode: value = kp_s + s·(kp_d − kp_d0); jacobian = J_d·J_d0⁻¹·J_s. Without relative
    movement the driving keypoints are returned unchanged (as upstream).
    Unlike upstream, s is computed per sample (upstream applies sample 0's scale to the batch);
    for batch size 1 both agree.
    """
    if not use_relative_movement:
        return kp_driving
    dtype = kp_driving.value.dtype
    b = kp_driving.value.shape[0]
    if adapt_movement_scale:
        scale = movement_scale(kp_source.value, kp_driving_initial.value).to(dtype).view(b, 1, 1)
        value = (kp_driving.value - kp_driving_initial.value) * scale + kp_source.value
    else:
        value = (kp_driving.value - kp_driving_initial.value) + kp_source.value
    jacobian = kp_driving.jacobian
    if use_relative_jacobian:
        jacobian = torch.matmul(torch.matmul(kp_driving.jacobian, inv2x2(kp_driving_initial.jacobian)), kp_source.jacobian)
    return Keypoints(value, jacobian)


def normalized_shape(points: Tensor) -> Tensor:
    """Centre (T, N, 2+) point sets on their mean and divide x, y by sqrt(hull area) (as demo.find_best_frame)."""
    xy = points[..., :2].float()
    xy = xy - xy.mean(dim=-2, keepdim=True)
    area = convex_hull_area(xy).clamp(min=1e-12)
    return xy / area.sqrt().view(-1, 1, 1)


def best_frame_index(source_points: Tensor, driving_points: Tensor) -> Tensor:
    """Index of the driving frame whose normalised shape is closest to the source's.

    source_points: (N, 2) landmarks or keypoints (extra columns such as z are ignored);
    driving_points: (T, N, 2) the same points for each driving frame. Returns a 0-d int64 tensor.
    """
    src = normalized_shape(source_points.unsqueeze(0))
    drv = normalized_shape(driving_points)
    return ((drv - src) ** 2).sum(dim=(1, 2)).argmin()
