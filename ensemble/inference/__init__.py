"""Logits from networks: batches to the device, test-time augmentation, predicting from saved folds."""
