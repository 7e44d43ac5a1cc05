"""Export and import jobs (RQ): MLflow, Weights & Biases, TensorBoard and files.

Not built yet: this package exists so the distribution's layout is final.
"""
