"""Blending cached experiments: methods (estimators on arrays) and their registry.

Each method is a class following the contract in base.py, registered by name.
"""

from ensemble.blend.base import Blender
from ensemble.blend.mean import MeanBlender
from ensemble.registry import Registry

METHODS: Registry[type[Blender]] = Registry("blend method")
METHODS.register("mean")(MeanBlender)

__all__ = ["Blender", "METHODS", "MeanBlender"]
