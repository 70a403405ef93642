"""Training, evaluation and benchmarking of lowered specs (imports torch)."""
