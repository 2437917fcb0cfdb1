"""ddag's own OmegaConf resolvers, registered with the schemas (`register_configs`)."""

from omegaconf import OmegaConf

# ResNets of this many blocks or more (ResNet-50/101/152) do not survive +debug=fast at 32x16:
# after its two steps, eval-mode BatchNorm with two steps of running statistics let the
# activations of ResNet-50's 2x1 feature map reach 1.4e19 (FC all zeros, FC_att NaN), while at
# 64x32 the same run tests finite. The tiny backbone and ResNet-18/34 are fine at 32x16.
DEEP_RESNET_BLOCKS = 16


def debug_side(layers, side: int) -> int:
    """The image side +debug=fast uses: `side`, doubled for deep ResNets (`layers`, the blocks
    per stage, summing to DEEP_RESNET_BLOCKS or more); backbones without `layers` keep it."""
    try:
        deep = sum(int(blocks) for blocks in layers) >= DEEP_RESNET_BLOCKS
    except TypeError:  # no layers (a ViT)
        deep = False
    return 2 * side if deep else side


def register_resolvers() -> None:
    """Make `${ddag_debug_side:...}` available to the configs (idempotent)."""
    OmegaConf.register_new_resolver("ddag_debug_side", debug_side, replace=True)
