"""run folder."""
