"""Model-based segmenters (optional dependencies; registered in :mod:`dicomstation.pipeline`)."""
