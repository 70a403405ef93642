"""Modules the lowering builds that torch.nn does not offer as such, each with the parameter
names of the torchvision layer it stands for, so torchvision's state_dicts load strictly."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelsLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map at each position: torchvision's
    LayerNorm2d (ConvNeXt), which permutes to channels-last, normalises C and permutes back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention on one (N, T, d) input: nn.MultiheadAttention (batch first), so
    its tensors are in_proj_weight (3d, d), in_proj_bias, out_proj.weight and out_proj.bias, as
    in torchvision's ViT. It always runs torch's standard path (F.multi_head_attention_forward,
    which calls scaled_dot_product_attention), never the fused inference kernel that
    nn.MultiheadAttention takes in eval mode without grad: that kernel is one op FlopCounterMode
    has no formula for, so the count would depend on the mode. The outputs are the same."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.transpose(0, 1)  # the standard path is sequence-first, as MultiheadAttention's own
        out, _ = F.multi_head_attention_forward(
            tokens, tokens, tokens, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, need_weights=False,
        )
        return out.transpose(0, 1)
