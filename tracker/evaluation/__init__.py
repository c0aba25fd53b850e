"""Accuracy evaluation of the runtime (300VW videos, labelled images) and of peer trackers."""
