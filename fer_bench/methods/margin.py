"""Shared head of the margin-loss methods: a cosine classifier trained with an additive margin
(ArcFace or CosFace) plus the centre-cosine term, evaluated without the margin.

Used by ``angular_sknet`` (ArcFace form) and ``multiscale_ccl`` (CosFace form).  A subclass
builds ``classifier`` (:class:`~fer_bench.nn.losses.CosineClassifier`), the margin loss under
the attribute named by :attr:`MarginCentreMethod.margin_attr`, ``center_loss``,
``center_weight``, and defines ``embed(x)``.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from fer_bench.methods.base import FERMethod


class MarginCentreMethod(FERMethod):
    margin_attr: ClassVar[str] = "margin"  # attribute holding the margin loss; also its logged name

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation logits: ``s·cos θ`` between the embedding and each class weight (no margin)."""
        return getattr(self, self.margin_attr).s * self.classifier(self.embed(x))

    def training_outputs(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.embed(x)
        return {"embedding": emb, "cos": self.classifier(emb)}

    def compute_loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        margin = getattr(self, self.margin_attr)(out["cos"], y)
        cen = self.center_loss(out["embedding"], y)
        return margin + self.center_weight * cen, {self.margin_attr: margin.detach(), "center_cos": cen.detach()}
