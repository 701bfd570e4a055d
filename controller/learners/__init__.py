"""Learners (TRPO, A2C, DQN): one algorithm per module, the interfaces in
:mod:`protocols.core`, every learner registered in
:mod:`controller.learners.registry`. Importing the package needs no torch."""

from controller.learners.registry import (
    LEARNERS,
    LearnerSpec,
    QDims,
    UnknownLearner,
    learner,
    make,
    names,
)
from protocols.core import Actor, Learner, VariableSource

__all__ = ["LEARNERS", "Actor", "Learner", "LearnerSpec", "QDims", "UnknownLearner",
           "VariableSource", "learner", "make", "names"]
