"""The course homework around mytorch: an MLP (mlp.py), its training script (mlp_runner.py) built on
the shared trainer command line (trainer.py), the data loader (dataset.py) and the bundled MNIST
sample (data/)."""
