"""Real-time facial landmark tracker with subpixel heatmap regression (Bulat et al., 2021).

Conventions live where the code that relies on them lives: coordinates in
`tracker.geometry`, heatmaps in `tracker.codec`, the 68-point markup in `tracker.landmarks`,
.pts files in `tracker.pts`, model files in `tracker.modelfile`.
"""
__version__ = "0.1.0"
