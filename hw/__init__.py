"""The course homework around mytorch: an MLP (mlp.py), its training script (mlp_runner.py),
the data loader (dataset.py) and the bundled MNIST sample (data/)."""
