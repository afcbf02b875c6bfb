"""A reward model read through a transfer method, for alignment with another language's RM.
The ``rm-transfer`` analysis (matrix, representation shift) is the ``transfer`` plugin's."""

from .reward import TransferredReward

__all__ = ["TransferredReward"]
