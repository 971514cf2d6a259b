"""diffgrn: differentiable simulation of gene-regulatory fate patterning in JAX."""

from . import diagnostics, discovery, estimators
from .brownian import CounterBrownianPath, GridBrownianPath
from .compare import Comparison, compare
from .discovery import Library, explore, load_library
from .dynamics import Dynamics, ProjectedSolver, available_memory
from .estimators import AntitheticES, InverseVariance, LikelihoodRatio, Mixture, Pathwise
from .io import load, save
from .methods import (
    CMAES,
    AbstractMethod,
    AbstractPopulationMethod,
    Evosax,
    Gradient,
    Hybrid,
    LinearSchedule,
    MuPlusLambdaES,
    RandomSearch,
    StepInfo,
    default_optimiser,
    openes,
)
from .objective import Objective
from .readout import (
    AbstractReadout,
    ChainedReadout,
    HardReadout,
    SoftReadout,
    StraightThroughReadout,
)
from .regulator import (
    AbstractRegulator,
    MLPRegulator,
    TanhRegulator,
    TranscriptionalRegulator,
    count_parameters,
)
from .tissue import Chain, Graph, Lattice, Tissue
from .train import History, TrainResult, assess, train
from .utility import (
    AbstractUtility,
    PatternInformation,
    TargetPattern,
    Utility,
    binary_entropy,
    hard_utility,
    pattern_entropy,
    soft_utility,
)

ES = MuPlusLambdaES

__version__ = "0.4.0"

__all__ = [
    "AbstractMethod",
    "AbstractPopulationMethod",
    "AbstractReadout",
    "AbstractRegulator",
    "AbstractUtility",
    "AntitheticES",
    "CMAES",
    "Evosax",
    "RandomSearch",
    "Chain",
    "ChainedReadout",
    "Comparison",
    "CounterBrownianPath",
    "Dynamics",
    "ES",
    "InverseVariance",
    "LikelihoodRatio",
    "Gradient",
    "Graph",
    "GridBrownianPath",
    "HardReadout",
    "History",
    "Hybrid",
    "Lattice",
    "Library",
    "LinearSchedule",
    "MLPRegulator",
    "Mixture",
    "MuPlusLambdaES",
    "Objective",
    "Pathwise",
    "PatternInformation",
    "ProjectedSolver",
    "SoftReadout",
    "StepInfo",
    "StraightThroughReadout",
    "TanhRegulator",
    "TargetPattern",
    "Tissue",
    "TrainResult",
    "TranscriptionalRegulator",
    "Utility",
    "assess",
    "available_memory",
    "binary_entropy",
    "compare",
    "count_parameters",
    "default_optimiser",
    "diagnostics",
    "discovery",
    "estimators",
    "explore",
    "hard_utility",
    "load",
    "load_library",
    "openes",
    "pattern_entropy",
    "save",
    "soft_utility",
    "train",
]
