"""The competition's data: its files, the submission's shape, folds, decoded images and their cache. Torch-free."""
