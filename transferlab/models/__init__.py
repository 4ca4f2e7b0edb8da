"""Models: the backbone registry first (specs as data, the factory, heads), then the builders
that register into it (EfficientNet-Lite, torchvision's nets, labnet, the BERT blocks), and
freezing. Importing this package registers every builder."""

from . import efficientnet_lite, labnet, textnet, torchvision_nets  # noqa: F401  (they register)
from .freezing import freeze_to, trainable_summary
from .registry import BackboneSpec, BlockNet, backbone_status, create_backbone, get_spec, list_backbones

__all__ = [
    "BackboneSpec",
    "BlockNet",
    "backbone_status",
    "create_backbone",
    "freeze_to",
    "get_spec",
    "list_backbones",
    "trainable_summary",
]
