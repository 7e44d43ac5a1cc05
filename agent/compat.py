class ExperimentTracker: pass
