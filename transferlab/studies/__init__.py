"""Studies built on comparisons: the grid (sizes x depths), choosing a backbone, multitask
training, zero-shot, what the layers learned, and ImageNet predictions."""
