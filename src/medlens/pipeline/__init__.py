"""Composite systems as one run: segment, detect, crop, features and classify stages chained
by a pipeline config (``kind: pipeline``), with cross-fitted masks and their report."""
