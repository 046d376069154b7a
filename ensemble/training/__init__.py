"""Training: the stage plan's optimiser and schedule, augmentation, the recipe, one fold's trainer, fold jobs, executors, the experiment run."""
