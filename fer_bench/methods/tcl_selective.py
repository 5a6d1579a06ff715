"""``tcl_selective`` — Rajoli, Lotfi, Atyabi & Afghah 2023: triplet-centre loss sampling
strategies with selective attention.

H. Rajoli, F. Lotfi, A. Atyabi, F. Afghah, "Triplet Loss-less Center Loss Sampling Strategies
in Facial Expression Recognition Scenarios", CISS 2023, doi 10.1109/CISS56502.2023.10089734,
arXiv 2302.04108.

Stated by the paper (abstract): the triplet-centre loss (TCL, He et al., CVPR 2018) on all
embedding dimensions, trained jointly with cross entropy; three negative-sample selection
strategies (fully-synthesized, semi-synthesized, prediction-based); a selective attention
module combining pixel-wise and element-wise attention coefficients computed from
high-semantic deep features; evaluated on RAF-DB, where all three strategies beat the
baseline.

**Reconstruction** (recorded in the method's metafile, ``fer_bench/methods/metafiles/tcl_selective.yaml``;
closest published baseline: DACL, Farzaneh & Qi, WACV 2021, ResNet-18 with 512-d features and
a per-dimension attention):

* torchvision ResNet-18 trunk; selective attention on layer4
  (:class:`~fer_bench.nn.attention.SelectiveAttention`): pixel map ``sigmoid(conv1x1)``,
  element vector ``sigmoid(MLP(GAP))``, feature ``GAP(layer4 ⊙ pixel̂) ⊙ element`` (512-d),
  the pixel map rescaled to spatial mean 1 (without it the map collapsed to ~0 and the
  network did not learn; see the block's docstring for the measurement);
  linear classifier;
* loss ``CE + λ·TCL`` with ``TCL = Σ_i max(D(f_i, c_{y_i}) + m − D(f_i, c_neg(i)), 0)``, the
  **sum** over the batch as He et al. write it (a batch mean would make the term B times
  smaller — 64x at batch 64 — and, on the unit sphere where a hinge is at most 2 + m, leave it
  at most 0.03 against a cross entropy near 1: the three strategies would then train alike),
  λ = 0.01, margin m = 1.0, ``D(a, b) = ½‖a − b‖²`` on L2-normalised features and centres
  (:class:`~fer_bench.nn.losses.TripletCenterLoss`); ``train/tcl`` (the sum) and
  ``train/tcl_weighted`` (λ·sum) are logged;
  the negative centre by ``strategy`` (constructor argument; the benchmark runs all three):
  ``fully_synthesized`` (softmax(−D)-weighted mean of the other centres),
  ``semi_synthesized`` (mean of the nearest other centre and that weighted mean),
  ``prediction_based`` (centre of the highest non-target logit); the two synthesized
  negatives are L2-normalised back onto the unit sphere, where the real centres lie (a
  convex mix of unit centres falls near the origin, ``D ≈ ½`` from every feature, and the
  m = 1 hinge could never reach 0: floors 0.319 / 0.198 with every feature on its centre);
* the class centres are ``nn.Parameter``s updated by their **own** SGD (lr 0.5, as the
  centre-loss recipe of Wen et al. ECCV 2016 and DACL use), through Lightning's manual
  optimisation with two optimisers.  As in those recipes the centre step does not depend on
  λ or on the batch size: centre ``j`` moves by ``lr · Σ_i ∂hinge_i/∂c_j / (1 + n_j)``, the
  unweighted TCL's gradient divided by one plus the number of class-``j`` samples in the
  batch (Wen et al.'s update; DACL ``loss.py`` divides its centre gradient the same way), so
  λ only weighs the TCL against CE for the network.  Under DDP the centre gradients are
  all-reduced with every other gradient, so the centres stay identical on all ranks.

Default input: RGB 224x224, DACL's RAF-DB resolution (the aligned 100x100 RAF-DB faces
upsampled), because the paper builds on DACL and its own resolution is not public.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_bench.errors import verify_choice
from fer_bench.methods.base import FERMethod
from fer_bench.nn.attention import SelectiveAttention
from fer_bench.nn.backbones import resnet18_trunk
from fer_bench.nn.functional import hard_labels, soft_cross_entropy
from fer_bench.nn.losses import NEGATIVE_STRATEGIES, TripletCenterLoss
from fer_bench.registry import METHODS


@METHODS.register("tcl_selective")
class TCLSelective(FERMethod):
    """ResNet-18 + selective attention, CE + λ·triplet-centre loss with a negative-centre
    strategy; centres trained by their own SGD (Rajoli et al. 2023) [reconstruction]."""

    modality = "static"
    default_input_size = 224
    default_in_chans = 3
    hparam_choices = {**FERMethod.hparam_choices, "strategy": NEGATIVE_STRATEGIES}

    def __init__(self, strategy: str = "fully_synthesized", tcl_weight: float = 0.01, tcl_margin: float = 1.0,
                 center_lr: float = 0.5, attention_reduction: int = 16, **kwargs: Any) -> None:
        verify_choice(strategy, "strategy", NEGATIVE_STRATEGIES)
        if tcl_weight < 0:
            raise ValueError(f"tcl_weight must be >= 0, got {tcl_weight}")
        super().__init__(strategy=strategy, tcl_weight=tcl_weight, tcl_margin=tcl_margin, center_lr=center_lr,
                         attention_reduction=attention_reduction, **kwargs)
        self.automatic_optimization = False
        self.backbone = resnet18_trunk(self.in_chans, num_classes=None)
        self.attention = SelectiveAttention(512, attention_reduction)
        self.head = nn.Linear(512, self.num_classes)
        self.tcl = TripletCenterLoss(self.num_classes, 512, margin=tcl_margin, strategy=strategy, normalize=True,
                                     reduction="sum")
        self.tcl_weight = float(tcl_weight)

    # -- network ---------------------------------------------------------------------------
    def layer4(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        feat, _, _ = self.attention(self.layer4(x))
        return feat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def training_outputs(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.features(x)
        return {"features": feat, "logits": self.head(feat)}

    def compute_loss(self, out: dict[str, torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ce = soft_cross_entropy(out["logits"], y, self.hparams.label_smoothing)
        tcl = self.tcl(out["features"], y, logits=out["logits"])
        weighted = self.tcl_weight * tcl
        return ce + weighted, {"ce": ce.detach(), "tcl": tcl.detach(), "tcl_weighted": weighted.detach()}

    # -- two optimisers: the network's, and the centres' own SGD -----------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        centers = {id(p) for p in self.tcl.parameters()}
        return [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in centers]}]

    def configure_optimizers(self):
        main = super().configure_optimizers()
        centers = torch.optim.SGD(self.tcl.parameters(), lr=float(self.hparams.center_lr))
        if isinstance(main, dict):
            return [main["optimizer"], centers], [main["lr_scheduler"]]
        return [main, centers]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        x, y = batch[0], batch[1]
        if x is None:  # every sample of the batch was unreadable
            return None
        opt, center_opt = self.optimizers()
        out = self.training_outputs(x, y)
        loss, parts = self.compute_loss(out, y)
        opt.zero_grad()
        center_opt.zero_grad()
        self.manual_backward(loss)
        if self.tcl_weight > 0:  # centres step on the unweighted TCL gradient / (1 + n_j) (λ = 0: centres idle)
            self.scale_center_grad(y)
        opt.step()
        center_opt.step()
        bs = x.shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs, on_step=True, on_epoch=True)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs, on_step=False, on_epoch=True)
        return loss.detach()

    def scale_center_grad(self, y: torch.Tensor) -> None:
        """The λ-weighted, batch-summed centre gradient as Wen et al.'s centre update: divided by λ and,
        per centre ``j``, by ``1 + n_j`` (its class's samples in the batch).  Under DDP the gradient is
        already the mean over the ranks of their sums, so it is scaled back by the world size and ``n_j``
        counts the whole global batch (all-reduced): every rank then takes the same centre step."""
        grad = self.tcl.centers.grad
        if grad is None:
            return
        counts = torch.bincount(hard_labels(y), minlength=self.num_classes).to(grad.dtype)
        trainer = getattr(self, "_trainer", None)
        world = trainer.world_size if trainer is not None else 1
        if world > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        grad.mul_(world / self.tcl_weight).div_((1.0 + counts)[:, None])

    def on_train_epoch_end(self) -> None:
        """Manual optimisation: the epoch-interval scheduler of the network optimiser is stepped here."""
        scheds = self.lr_schedulers()
        if scheds is None:
            return
        for s in scheds if isinstance(scheds, list) else [scheds]:
            s.step()
