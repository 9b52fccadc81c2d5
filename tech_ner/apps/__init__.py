"""Inference apps on a trained pipeline: the shared inference layer, the extractor and the web app."""
