"""The course homework around mytorch: three models to complete (mlp.py, cnn.py, rnn.py), their
training scripts (mlp_runner.py, cnn_runner.py, rnn_runner.py) built on the shared trainer
(trainer.py: command line, checks, training loop, outputs, the tape picture flag), the data loader
(dataset.py) and the bundled MNIST sample (data/)."""
