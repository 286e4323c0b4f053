"""PIL images <-> (1, 3, H, W) float tensors in [0, 1]."""

from __future__ import annotations

from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

__all__ = ["to_image", "to_tensor"]


def to_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [0, 1]."""
    return pil_to_tensor(image).float().div(255).unsqueeze(0)


def to_image(tensor: Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> PIL RGB, rounded to 8 bits."""
    return to_pil_image(tensor[0].detach().float().clamp(0, 1).mul(255).round().byte().cpu())
