"""Training data: the procedural `shapes` set, ImageFolder loading, augmentation, loaders.

`shapes`, `folder` and `augment` are torch-free (PIL and numpy); `loader` wraps
them in torch Datasets and DataLoaders for `model.train`.
"""
