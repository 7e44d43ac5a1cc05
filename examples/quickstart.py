"""The seed's quick start, unchanged apart from the import."""

import math
import random

from aquarium.agent import ExperimentTracker

tracker = ExperimentTracker(experiment_name="my_experiment")
tracker.log_hyperparameters({"learning_rate": 0.001, "batch_size": 32, "epochs": 100})
for epoch in range(100):
    loss = 2.0 * math.exp(-epoch / 25) + random.gauss(0, 0.02)
    accuracy = 1.0 - loss / 2.5
    tracker.log_metrics(
        {"loss": loss, "accuracy": accuracy, "val_loss": loss * 1.1, "val_accuracy": accuracy * 0.97}, step=epoch
    )
tracker.set_status("completed")
print("summary:", tracker.save_experiment_summary())
print("best accuracy (value, step):", tracker.get_best_metric("accuracy", mode="max"))
tracker.finish()
