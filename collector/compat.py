class ExperimentManager: pass
