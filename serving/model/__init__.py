"""The model: loading a snapshot, predictors and their typed Predictions, golden, training."""
