"""Real-time facial landmark tracker with subpixel heatmap regression (Bulat et al., 2021).

Conventions live where the code that relies on them lives: coordinates in
`tracker.core.geometry`, heatmaps in `tracker.core.codec`, the 68-point markup in `tracker.core.landmarks`,
.pts files in `tracker.core.pts`, model files in `tracker.core.modelfile`.
"""
__version__ = "0.1.0"
