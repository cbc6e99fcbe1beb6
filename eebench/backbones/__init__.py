from eebench.backbones.layered import LayeredModel
from eebench.backbones.loader import Backbone, load_backbone

__all__ = ["Backbone", "LayeredModel", "load_backbone"]
