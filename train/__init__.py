"""Training: crop cache, augmentation, losses and the training loop for `tracker.core.model.FAN`."""
