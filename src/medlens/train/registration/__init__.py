"""``medlens train`` for ``task: registration``: a VoxelMorph-style network on image pairs."""
