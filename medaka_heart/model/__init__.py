"""The U-Net ventricle segmenter: architecture, losses, augmentation, data, training, checkpoints.

Only this package and `medaka_heart.segment` import torch.
"""
