"""An exported ONNX network behind the ``nn.Module`` interface medlens' inference code calls.

``predict_arrays`` and ``predict_mask`` (sliding windows, flip TTA) take a ``LoadedRun`` and
call ``run.model(batch)``; this module lets the same code run on onnxruntime. Gradients do not
flow through it: explanations (Grad-CAM) use the PyTorch network.

The file gives the raw logits only: the softmax, flip TTA and the run's calibrator
(``calibration.json``) are applied by medlens after ``forward``, exactly as for PyTorch. The
calibrator the file records in its metadata at export is therefore a description, not part of
the graph; ``serve.models_store`` refuses a ``model.onnx`` whose recorded calibrator is not the
run's (``check_onnx_calibration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medlens.inference.onnx import OUTPUT_NAME, onnx_session

# What medlens' shape checks read from a network (``check_input_size``, sliding windows).
_COPIED_ATTRIBUTES = ("spatial_dims", "in_channels", "num_classes", "size_divisor", "config")


class OnnxModule(nn.Module):
    """``forward(x)`` runs the ONNX file on the CPU and returns the logits as a tensor.

    Args:
        onnx_path: the exported network.
        like: the PyTorch network it was exported from; its shape attributes are copied.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, onnx_path: str | Path, like: nn.Module, threads: int | None = None) -> None:
        super().__init__()
        self.session: Any = onnx_session(onnx_path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        for name in _COPIED_ATTRIBUTES:
            if hasattr(like, name):
                setattr(self, name, getattr(like, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self.session.run([OUTPUT_NAME], {self.input_name: batch})
        return torch.from_numpy(logits)
