"""The runtime that users run: capture, detection, alignment, tracking, smoothing, the threaded
pipeline and the sinks. Imports the core and the engines' backend registry, never training
or evaluation."""
