"""Training augmentations, one file each, selected as a list by the `loader/augment` group.

Every augmentation draws from the generator the loader seeds with (seed, epoch, position in
epoch), so a run is bit-exact on resume and with any number of workers. `base.py` holds the
contract (`Augmentation`) and the per-image pipeline (`AugmentationPipeline`).
"""
