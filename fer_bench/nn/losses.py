"""Margin, centre and triplet-centre losses of the static paper methods.

Each loss is usable on its own; the ones that own learnable class centres keep them as an
``nn.Parameter`` (so a module that holds the loss trains them with its optimiser, saves them
in its checkpoint and keeps them in sync under DDP — centres get all-reduced gradients like
any other parameter).

Targets may be class ids ``[N]`` or soft targets ``[N, C]`` (FERPlus probability mode): the
margin, the centre and the negative are then taken at ``target.argmax(1)``, and the
cross-entropy part uses the soft target.

Sources
-------
* ArcFace — Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
  Recognition", CVPR 2019: target logit ``s·cos(θ_y + m)`` on L2-normalised embeddings and
  class weights.  Where ``θ_y + m > π`` the target logit would stop decreasing
  monotonically; as in the authors' implementation it is replaced there by
  ``s·(cos θ_y − m·sin m)``.
* CosFace — Wang, Wang, Zhou, Ji, Gong, Zhou, Li, Liu, "CosFace: Large Margin Cosine Loss for
  Deep Face Recognition", CVPR 2018: target logit ``s·(cos θ_y − m)``.
* Centre-cosine loss — ``mean_i(1 − cos(f_i, c_{y_i}))``: the angular centre term of
  Su & Wang 2021 and the "center cosine loss" of Wen et al. 2024 [reconstruction, both
  papers' formulas are not public; ``fer_bench/methods/metafiles/angular_sknet.yaml`` and
  ``multiscale_ccl.yaml``].
* Triplet-centre loss — He, Zhou, Zhou, Bai, Bai, "Triplet-Center Loss for Multi-View 3D
  Object Retrieval", CVPR 2018: ``max(D(f_i, c_{y_i}) + m − D(f_i, c_neg(i)), 0)`` with
  ``D(a, b) = ½‖a − b‖²``; the negative-centre strategies are those of Rajoli et al.,
  CISS 2023 (arXiv 2302.04108) [reconstruction, ``fer_bench/methods/metafiles/tcl_selective.yaml``].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fer_bench.errors import verify_choice
from fer_bench.nn.functional import hard_labels, soft_cross_entropy

NEGATIVE_STRATEGIES = ("fully_synthesized", "semi_synthesized", "prediction_based")


class CosineClassifier(nn.Module):
    """Cosine between L2-normalised embeddings and L2-normalised class weights: ``[N, C]`` in [-1, 1].

    The classifier of ArcFace/CosFace (a bias-free linear layer on the unit sphere).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


class _MarginLoss(nn.Module):
    """Cross entropy of scaled cosine logits whose target entry gets a margin (subclasses say which)."""

    def __init__(self, s: float = 30.0, m: float = 0.35) -> None:
        super().__init__()
        if s <= 0:
            raise ValueError(f"scale s must be positive, got {s}")
        if m < 0:
            raise ValueError(f"margin m must be >= 0, got {m}")
        self.s = float(s)
        self.m = float(m)

    def target_cosine(self, cos_y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def logits(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin applied to each sample's (hard) target class."""
        y = hard_labels(target)
        onehot = F.one_hot(y, cos.shape[1]).to(torch.bool)
        cos_y = cos.gather(1, y[:, None]).squeeze(1)
        adjusted = torch.where(onehot, self.target_cosine(cos_y).to(cos.dtype)[:, None], cos)
        return self.s * adjusted

    def forward(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross entropy of the margin logits (soft targets allowed); ``cos`` is ``[N, C]``."""
        return soft_cross_entropy(self.logits(cos, target), target)

    def extra_repr(self) -> str:
        return f"s={self.s}, m={self.m}"


class ArcFaceLoss(_MarginLoss):
    """Additive angular margin (Deng et al., CVPR 2019): target cosine ``cos(θ_y + m)``.

    With ``m = 0`` it is exactly the cross entropy of the scaled cosines ``s·cos``.

    ``easy_margin`` (the option of the public ArcFace implementations: insightface, ronghuaiyang's
    ``ArcMarginProduct``): the margin only where ``cos θ > 0``, the plain ``cos θ`` beyond 90°.
    Without it, past θ = 90° − m/2 the slope ``d cos(θ+m) / d cos θ = sin(θ+m) / sin θ`` is below
    1, so a sample's pull towards its class weight is weaker than its push away from the others;
    from scratch (θ ≈ 90°, features not yet separated) that can drive every class weight to one
    direction and the features to its antipode (θ -> π − m, the ``cos θ − m·sin m`` branch).
    """

    def __init__(self, s: float = 30.0, m: float = 0.35, easy_margin: bool = False) -> None:
        super().__init__(s, m)
        self.easy_margin = bool(easy_margin)

    def target_cosine(self, cos_y: torch.Tensor) -> torch.Tensor:
        cos_y = cos_y.clamp(-1.0, 1.0)
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp_min(0.0))
        phi = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)  # cos(θ + m)
        if self.easy_margin:
            return torch.where(cos_y > 0, phi, cos_y)
        # past θ = π − m, cos(θ + m) would increase again: use the linear extension instead
        return torch.where(cos_y > math.cos(math.pi - self.m), phi, cos_y - self.m * math.sin(self.m))


class CosFaceLoss(_MarginLoss):
    """Large margin cosine loss (Wang et al., CVPR 2018): target cosine ``cos θ_y − m``.

    With ``m = 0`` it is exactly the cross entropy of the scaled cosines ``s·cos``.
    """

    def target_cosine(self, cos_y: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m


def unit_centers(num_classes: int, dim: int) -> torch.Tensor:
    """Random unit-norm centres ``[C, D]``.

    The centre losses here read centres through their direction only (cosine, or distances
    after L2 normalisation), and the gradient through a normalisation scales with
    ``1/‖c‖``: unit-norm centres (rather than ``randn`` ones of norm ``≈ √D``) keep the
    centres' effective learning rate independent of the embedding size.
    """
    return F.normalize(torch.randn(num_classes, dim), dim=1)


def center_cosine_loss(features: torch.Tensor, centers: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i(1 − cos(f_i, c_{y_i}))`` — 0 when every feature points along its class centre."""
    y = hard_labels(target)
    return (1.0 - F.cosine_similarity(features, centers[y], dim=1)).mean()


class CenterCosineLoss(nn.Module):
    """Centre-cosine loss with learnable centres ``[C, D]`` (an ``nn.Parameter``).

    ``λ·mean_i(1 − cos(f_i, c_{y_i}))`` is the angular centre term of Su & Wang 2021 and the
    "center cosine loss" of Wen et al. 2024 (λ is applied by the caller).  Unlike the
    Euclidean centre loss (Wen et al., ECCV 2016) it only constrains directions, which suits
    embeddings that a cosine (ArcFace/CosFace) classifier reads.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(unit_centers(num_classes, dim))

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return center_cosine_loss(features, self.centers, target)


def half_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``D(a_i, b_j) = ½‖a_i − b_j‖²`` for all pairs: ``[N, D] x [M, D] -> [N, M]``."""
    return 0.5 * (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)


def negative_centers(
    features: torch.Tensor,
    centers: torch.Tensor,
    target: torch.Tensor,
    strategy: str,
    logits: torch.Tensor | None = None,
    *,
    on_sphere: bool = False,
) -> torch.Tensor:
    """The negative centre of each sample, ``[N, D]``, by one of Rajoli et al.'s strategies.

    * ``fully_synthesized``: ``Σ_{j≠y} w_ij c_j`` with attention weights
      ``w_i = softmax_{j≠y}(−D(f_i, c_j))`` — a synthetic centre pulled towards the classes
      the sample is *closest* to (the hardest ones) but made of all of them.  The weights are
      treated as constants (``detach``): gradients reach the features and centres through
      the weighted mean, not through the choice of weights [reconstruction].
    * ``semi_synthesized``: ``½ (c_nearest + fully_synthesized)``, with ``c_nearest`` the
      other-class centre nearest to ``f_i`` (He et al.'s hardest negative centre).
    * ``prediction_based``: the centre of the class with the highest non-target logit
      (the class the classifier confuses the sample with); needs ``logits``.

    ``features`` and ``centers`` are used as given (normalise them first if wanted).

    ``on_sphere=True`` (for unit-norm centres) L2-normalises each *synthesized* negative —
    the weighted mean, and the semi-synthesized mean built from the normalised weighted mean —
    so that it lies on the unit sphere like every real centre.  Why: in TCL (He et al. 2018,
    eq. 3) the negative is a class centre, a point of the feature space the features are
    compared with; on the sphere a convex mix of centres falls inside the ball (for 7
    regular-simplex centres the weighted mean of the other six is ``−c_y/6``, norm 1/6), and a
    point near the origin is at ``D ≈ ½`` from *every* unit feature, so ``D_neg`` can never
    exceed ``D_pos + m`` for m = 1 and the hinge never switches off (floors 0.319 and 0.198 for
    the fully- and semi-synthesized negatives with every feature on its own centre).  Its
    direction is the spherical counterpart of the mean [reconstruction, ``metafiles/tcl_selective.yaml``].
    The prediction-based negative is a real centre and is returned as is.
    """
    verify_choice(strategy, "negative strategy", NEGATIVE_STRATEGIES)
    y = hard_labels(target)
    n_classes = centers.shape[0]
    if n_classes < 2:
        raise ValueError("the triplet-centre loss needs at least 2 classes")
    own = F.one_hot(y, n_classes).to(torch.bool)
    if strategy == "prediction_based":
        if logits is None:
            raise ValueError("strategy 'prediction_based' needs the classifier logits")
        j = logits.detach().masked_fill(own, float("-inf")).argmax(dim=1)
        return centers[j]
    dist = half_sq_dist(features, centers).masked_fill(own, float("inf"))
    weights = torch.softmax(-dist.detach(), dim=1)  # exp(-inf) = 0 for the own class
    synth = weights @ centers
    if on_sphere:
        synth = F.normalize(synth, dim=1)
    if strategy == "fully_synthesized":
        return synth
    nearest = centers[dist.argmin(dim=1)]
    semi = 0.5 * (nearest + synth)
    return F.normalize(semi, dim=1) if on_sphere else semi


def triplet_center_loss(
    features: torch.Tensor,
    centers: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 1.0,
    strategy: str = "fully_synthesized",
    logits: torch.Tensor | None = None,
    reduction: str = "mean",
    normalize: bool = False,
) -> torch.Tensor:
    """``max(D(f_i, c_{y_i}) + m − D(f_i, c_neg(i)), 0)`` over the batch (He et al., CVPR 2018).

    ``reduction='sum'`` is He et al.'s ``Σ_i``; the default ``'mean'`` divides by the batch
    size so that λ does not depend on it.

    ``normalize=True`` L2-normalises the features and the centres, and puts the synthesized
    negatives back on the unit sphere (``negative_centers(..., on_sphere=True)``): then
    ``D = 1 − cos ∈ [0, 2]`` for every pair, and the hinge is exactly 0 for all three strategies
    when each feature sits on its own centre and the centres are well separated (pairwise
    ``cos ≤ 0``, e.g. orthonormal or a regular simplex), as it is for He et al.'s real
    negative centres.
    """
    y = hard_labels(target)
    if normalize:
        features = F.normalize(features, dim=1)
        centers = F.normalize(centers, dim=1)
    neg = negative_centers(features, centers, y, strategy, logits, on_sphere=normalize)
    d_pos = 0.5 * (features - centers[y]).pow(2).sum(1)
    d_neg = 0.5 * (features - neg).pow(2).sum(1)
    hinge = F.relu(d_pos + margin - d_neg)
    if reduction == "mean":
        return hinge.mean()
    if reduction == "sum":
        return hinge.sum()
    if reduction == "none":
        return hinge
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class TripletCenterLoss(nn.Module):
    """Triplet-centre loss with learnable centres ``[C, D]`` and a negative-centre strategy.

    With ``normalize=True`` (the default, Rajoli et al.'s "m = 1.0 on normalised features")
    features *and* centres are L2-normalised before the distances, so
    ``D = ½‖a − b‖² = 1 − cos(a, b) ∈ [0, 2]``, and the synthesized negatives are L2-normalised
    too (they lie on the sphere like real centres; see :func:`negative_centers`), so a margin
    of 1 is attainable for every strategy.
    """

    def __init__(self, num_classes: int, dim: int, margin: float = 1.0, strategy: str = "fully_synthesized",
                 normalize: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        verify_choice(strategy, "negative strategy", NEGATIVE_STRATEGIES)
        self.centers = nn.Parameter(unit_centers(num_classes, dim))
        self.margin = float(margin)
        self.strategy = strategy
        self.normalize = bool(normalize)
        self.reduction = reduction

    def forward(self, features: torch.Tensor, target: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        return triplet_center_loss(features, self.centers, target, margin=self.margin, strategy=self.strategy,
                                   logits=logits, reduction=self.reduction, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, strategy={self.strategy!r}, normalize={self.normalize}"
