"""Output: the output directory's layout and manifest, the published dataset and its card."""
