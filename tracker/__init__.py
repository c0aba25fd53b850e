"""Real-time facial landmark tracker with subpixel heatmap regression (Bulat et al., 2021).

    from tracker import Tracker, TrackerConfig

    with Tracker(TrackerConfig()) as tracker:
        for result in tracker.track("clip.mp4"):
            ...

Layout (what may import what: `tests/test_layout.py`):
- `tracker.core`: landmark schemes, geometry, codec, model, model files, readers, metrics;
- `tracker.engines` (the folder engines/): inference backends, ONNX export, TensorRT, CUDA;
- `tracker.runtime`: capture, detection, alignment, tracking, pipeline, sinks;
- `tracker.evaluation`: accuracy on 300VW videos and labelled images, peers;
- `tracker.cli`: the `tracker` command.

Conventions live where the code that relies on them lives: coordinates in
`tracker.core.geometry`, heatmaps in `tracker.core.codec`, the 68-point markup in
`tracker.core.landmarks`, .pts files in `tracker.core.pts`, model files in
`tracker.core.modelfile`.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    """The Python API, imported on first use so that `import tracker` stays light."""
    if name == "Tracker":
        from tracker.runtime.tracker import Tracker

        return Tracker
    if name == "TrackerConfig":
        from tracker.runtime.config import TrackerConfig

        return TrackerConfig
    if name in ("Face", "FrameResult"):
        from tracker.runtime import results

        return getattr(results, name)
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")


__all__ = ["Face", "FrameResult", "Tracker", "TrackerConfig", "__version__"]
