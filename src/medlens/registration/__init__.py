"""Image registration: rigid -> affine -> deformable, optimised in PyTorch over a
multi-resolution pyramid (NCC, MI or MSE; diffusion or bending regularisers; optionally
diffeomorphic), or a trained VoxelMorph-style network for the deformable stage.

``register_images`` fits a ``TransformChain``; ``warp`` applies it to images, labels and
points; ``files`` writes and reads it; ``evaluation`` scores it.
"""

from medlens.registration.chain import TransformChain
from medlens.registration.pipeline import RegistrationResult, register_images

__all__ = ["RegistrationResult", "TransformChain", "register_images"]
