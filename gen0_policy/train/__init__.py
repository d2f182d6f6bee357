"""One training loop for pretraining and post-training; checkpoints; metrics."""
