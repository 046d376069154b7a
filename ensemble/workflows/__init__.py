"""Whole workflows that train and blend: the demo."""
