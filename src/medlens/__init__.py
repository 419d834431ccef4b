"""medlens: deep-learning medical image analysis, end to end.

Heavy libraries (torch, MONAI, timm) are imported inside the modules that need them, so
``import medlens`` and ``medlens --help`` stay instant.
"""

__version__ = "0.1.0"
