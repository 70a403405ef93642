"""What a training run folder says that its writer (archspec.train) and its readers (the run
curves in archspec.render) both rely on, kept here so neither imports the other."""
from __future__ import annotations

# the metric a task's run is judged and plotted by; its rows hold it as test_<metric>
MAIN_METRICS = {"classification": "accuracy", "segmentation": "iou", "embedding": "triplet_accuracy",
                "detection": "map_50"}

# a detection run's sheet of sample test predictions, which its report.html shows
PREDICTIONS_FILE = "predictions.png"
