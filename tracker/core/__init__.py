"""The core that training, engines and the runtime share: landmark schemes, geometry, the
heatmap codec, the FAN model, model files, label readers and metrics.

Nothing here imports the runtime (`tracker.runtime`), the evaluation or training
(`tests/test_layout.py` keeps it so)."""
