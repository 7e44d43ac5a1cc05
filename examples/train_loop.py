"""A plain training loop logging every step; run several copies with RANK=0..N-1 and one
AQUARIUM_RUN_ID to see them join one run."""

import math
import random
import time

import aquarium.agent as aq

run = aq.init(experiment="plain-loop", config={"lr": 3e-4, "batch_size": 64, "optimizer": {"name": "adamw"}})
for step in range(20_000):
    loss = 2.5 * math.exp(-step / 4000) + 0.05 + random.gauss(0, 0.03)
    run.log({"train/loss": loss, "train/lr": 3e-4 * min(1.0, step / 500)}, step=step)
    if step % 500 == 0:
        run.log({"val/loss": loss * 1.05, "val/acc": 1 - loss / 3}, step=step)
    if step % 1000 == 0:
        time.sleep(0.01)  # stands in for the GPU work between steps
report = run.finish()
print(f"run {run.id}: {report.points} points, committed up to seq {report.committed_seq} of {report.last_seq}")
