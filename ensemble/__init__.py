"""ens: a Kaggle-style image classification pipeline.

competition -> folds -> fold runs -> cached logits -> blend -> submission.
"""

__version__ = "0.1.0"
