"""The toy reproduction of cross-lingual reward-model transfer (docs/rm-transfer.md)."""
