"""One module per kind of pipeline stage: what it fits on training cases and applies to new ones."""
