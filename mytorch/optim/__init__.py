"""Optimizers over (parameter, gradient) pairs; parameters are updated in place."""
from mytorch.optim.optimizers import SGD, Adam, Optimizer

__all__ = ["Optimizer", "SGD", "Adam"]
