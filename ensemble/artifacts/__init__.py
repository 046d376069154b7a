"""The experiment folder on disk: its layout, locks, identity (settings.json) and scores. Torch-free."""
