"""Classifiers behind one contract, built by name: ``create_model("resnet18", ...)``.

2D backbones come from timm (torchvision for AlexNet and GoogLeNet), 3D ones from MONAI; every
model answers ``forward_features`` / ``forward_head`` / ``reset_classifier`` / ``stages`` /
``target_layer`` (see ``Classifier``).
"""

from medlens.models.classifier import Classifier
from medlens.models.errors import ModelWeightsError
from medlens.models.factory import create_model, model_from_config
from medlens.models.finetune import configure_finetuning, set_frozen_bn_eval
from medlens.models.init_weights import load_init_weights
from medlens.models.registry import (
    MODELS,
    TASKS,
    BuildOptions,
    ModelEntry,
    model_names,
    register_model,
)
from medlens.models.segmenter import Segmenter, check_input_size

__all__ = [
    "MODELS",
    "TASKS",
    "BuildOptions",
    "Classifier",
    "ModelEntry",
    "ModelWeightsError",
    "configure_finetuning",
    "create_model",
    "load_init_weights",
    "model_from_config",
    "model_names",
    "register_model",
    "set_frozen_bn_eval",
    "Segmenter",
    "check_input_size",
]
