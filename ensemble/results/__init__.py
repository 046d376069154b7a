"""What the cached logits say: the leaderboard and the report. Torch-free."""
