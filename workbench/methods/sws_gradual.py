"""Gradual snap for soft weight-sharing: the weights snap in steps while the rest retrain (beyond the paper).

Incremental network quantization (Zhou, Yao, Guo, Xu, Chen, ICLR 2017) quantizes a trained network in
steps: a share of each layer's weights is fixed to its quantized value, the others retrain to make up for
the error, and the share grows (50 %, 75 %, 87.5 %, then all). Soft weight-sharing snaps every weight to
its component's mean at once, which is free where training under the prior has gathered the weights around
the means (MNIST) and ruinous where it has not (LeNet-5 on Fashion-MNIST: -28 points). Snapping in steps
lets the data term correct for the snapped weights' error before the last ones snap.

A held weight stays at the mean of the component it was assigned when it snapped. What the steps cost is
pruning: a probe of each step's holds (LeNet-5 and LeNet-300-100 on Fashion-MNIST) found all of it in the
weights held at 0, mostly in fc1; those held at non-zero means cost 0.3 points at most. How the free weights
retrain depends on the zero component when the steps start (sws.py, `_gradual_snap`):
- Narrower than every other component (sws-lenet5 on Fashion-MNIST: sigma_0 0.0037, the others 0.016 and
  up, after the snap budget raised tau 4x): the prior has parted the weights it prunes from those it keeps,
  and what a snap would still cost lies in the weights between. The free weights then retrain on the data
  term alone and the mixture stays fixed, as INQ retrains: 89.93 % at 88.9x from a 91.65 % reference, and
  89.26 % at 95.8x from a second one (91.61 %). Under the prior at tau as set the same runs gave 87.11 % at
  98.9x and 86.89 % at 91.3x: the retraining moved some free weights out of the zero component's reach, but
  each of the first two steps pruned at a cost of 37 points of training accuracy.
- Still the widest (sws-lenet300 there with the snap budget off: sigma_0 0.038 at the half): without the
  prior it stays that wide, and the free weights, growing to make up for the held ones without leaving its
  reach, were pruned at every step (45-50 points each; 45.3 % at the end). Under the prior at tau as set
  (what the snap budget added is dropped) the held zeros narrow it step by step (sigma_0 0.038, 0.012,
  0.007, 0.005, 0.004): 84.4 % at 85.1x. The means keep learning there, and the held weights follow them.
  Tried there: the free weights off the prior with the mixture still learning, 86.2 % at 39.3x (LeNet-5:
  88.3 % at 61.8x); that with the means fixed, 42.4 % (the final snap cost 42 points).

As in INQ, each tensor's largest weights snap first: the error of a large weight is made up for by the
retraining that follows, while the last step, which no retraining follows, moves only the smallest
weights, most of them to 0.
"""

from __future__ import annotations

import torch

STEP_SHARE = 0.5        # each step holds this share of the weights still free (INQ: 50 %, 75 %, 87.5 %, ...)


def step_epochs(epochs: int, steps: int) -> list[int]:
    """The epochs (from 0) at whose start the steps snap: spread evenly over the stage's third quarter.

    The last quarter is left for retraining with most weights held. Spread over the whole second half the
    last step fell where the cosine learning rate is ~15 % of its start, and the retraining after it no
    longer won back what it cost (sws-lenet5 on Fashion-MNIST: 86.9 % at 116x; over the third quarter
    87.1 % at 99x; sws-lenet300 there, snap budget off: 82.9 % -> 84.4 %)."""
    half = epochs // 2
    rest = epochs - half
    span = max(rest // 2, min(steps, rest))         # one epoch per step at least, where the stage has them
    return sorted({half + (k * span) // steps for k in range(steps)})


class HeldWeights:
    """Which weights of each tensor are held at a component's mean, and which component."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.held = [torch.zeros(t.shape, dtype=torch.bool, device=t.device) for t in tensors]
        self.index = [torch.zeros(t.shape, dtype=torch.int64, device=t.device) for t in tensors]

    def fraction(self) -> float:
        total = sum(h.numel() for h in self.held)
        return sum(int(h.sum()) for h in self.held) / max(total, 1)

    def layer_fraction(self, i: int) -> float:
        return float(self.held[i].float().mean())

    @torch.no_grad()
    def add(self, tensors: list[torch.Tensor], assigned: list[torch.Tensor]) -> None:
        """Hold STEP_SHARE of each tensor's free weights (rounded up), the largest in size first, each at
        the component `assigned` gives it."""
        for t, held, index, a in zip(tensors, self.held, self.index, assigned):
            free = int((~held).sum())
            take = free - int(free * (1.0 - STEP_SHARE))       # ceil(free * share) without float rounding
            if take <= 0:
                continue
            size = t.abs().masked_fill_(held, -1.0).reshape(-1)
            chosen = torch.topk(size, take).indices
            held.view(-1)[chosen] = True
            index.view(-1)[chosen] = a.reshape(-1)[chosen]

    @torch.no_grad()
    def hold(self, tensors: list[torch.Tensor], values: torch.Tensor) -> None:
        """Set the held weights to `values[component]` (values: one per component, on any device)."""
        for t, held, index in zip(tensors, self.held, self.index):
            t.copy_(torch.where(held, values.to(device=t.device, dtype=t.dtype)[index], t))
