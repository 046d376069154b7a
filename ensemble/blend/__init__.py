"""Blending cached experiments: methods (estimators on arrays) and their registry.

Each method is a class following the contract in base.py, registered by name. A method's
options are its __init__ parameters; run.py refuses an option the chosen method lacks. Every
method takes the task kind (kinds.py) and names the kinds it refuses (Blender.refused).
"""

from ensemble.blend.base import Blender
from ensemble.blend.hill import HillBlender
from ensemble.blend.mean import MeanBlender
from ensemble.blend.power import PowerBlender
from ensemble.blend.rank import RankBlender
from ensemble.blend.stack import StackBlender
from ensemble.blend.weighted import WeightedBlender
from ensemble.registry import Registry

METHODS: Registry[type[Blender]] = Registry("blend method")
METHODS.register("mean")(MeanBlender)
METHODS.register("rank")(RankBlender)
METHODS.register("power")(PowerBlender)
METHODS.register("weighted")(WeightedBlender)
METHODS.register("hill")(HillBlender)
METHODS.register("stack")(StackBlender)

__all__ = ["Blender", "METHODS", "HillBlender", "MeanBlender", "PowerBlender", "RankBlender", "StackBlender", "WeightedBlender"]
