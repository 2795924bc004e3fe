"""Training SyncVP: the stages' pieces and the end-to-end recipe of the bundled model (docs/training.md)."""
