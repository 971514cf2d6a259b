"""diffgrn: differentiable simulation of gene-regulatory fate patterning in JAX."""

from . import config, constraint, diagnostics, discovery, estimators, noise, observe
from ._memory import available_memory
from ._version import __version__ as __version__
from .assessment import Assessment, ReproducibilityBoundWarning
from .brownian import CounterBrownianPath, GridBrownianPath
from .compare import Comparison, compare
from .config import Configurable, from_config
from .constraint import AbstractConstraint, Clip, Reflect, SoftClip, Unconstrained
from .discovery import (
    IMGEP,
    AbstractExploration,
    Library,
    RandomExploration,
    explore,
    load_library,
)
from .dynamics import Dynamics, ProjectedSolver
from .estimators import (
    AbstractBaseline,
    AntitheticES,
    BatchBaseline,
    InverseVariance,
    LikelihoodRatio,
    Mixture,
    Pathwise,
    ReplicateBaseline,
)
from .io import load, save
from .methods import (
    CMAES,
    AbstractMethod,
    AbstractPopulationMethod,
    ClippedAdam,
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
from .noise import AbstractNoise, CounterNoise, GridNoise, NoNoise, VirtualTreeNoise
from .objective import AbstractEvaluation, HardUtility, Objective, SoftUtility
from .pbt import GradientPopulation
from .readout import (
    AbstractReadout,
    ChainedReadout,
    HardReadout,
    IdentityReadout,
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
from .run import Run, load_run
from .tissue import Cell, Chain, Graph, Lattice, Tissue
from .train import History, TrainResult, assess, train
from .utility import (
    AbstractPatternScore,
    AbstractUtility,
    Agreement,
    ExactHits,
    NoUtility,
    PatternInformation,
    TargetPattern,
    Utility,
    binary_entropy,
    hard_utility,
    pattern_entropy,
    soft_utility,
)

ES = MuPlusLambdaES


__all__ = [
    "AbstractBaseline",
    "AbstractConstraint",
    "AbstractEvaluation",
    "AbstractExploration",
    "AbstractMethod",
    "AbstractNoise",
    "AbstractPatternScore",
    "AbstractPopulationMethod",
    "AbstractReadout",
    "AbstractRegulator",
    "AbstractUtility",
    "Agreement",
    "AntitheticES",
    "Assessment",
    "BatchBaseline",
    "CMAES",
    "Cell",
    "Chain",
    "ChainedReadout",
    "Clip",
    "ClippedAdam",
    "Comparison",
    "Configurable",
    "CounterBrownianPath",
    "CounterNoise",
    "Dynamics",
    "ES",
    "Evosax",
    "ExactHits",
    "Gradient",
    "GradientPopulation",
    "Graph",
    "GridBrownianPath",
    "GridNoise",
    "HardReadout",
    "HardUtility",
    "History",
    "Hybrid",
    "IMGEP",
    "IdentityReadout",
    "InverseVariance",
    "Lattice",
    "Library",
    "LikelihoodRatio",
    "LinearSchedule",
    "MLPRegulator",
    "Mixture",
    "MuPlusLambdaES",
    "NoNoise",
    "NoUtility",
    "Objective",
    "Pathwise",
    "PatternInformation",
    "ProjectedSolver",
    "RandomExploration",
    "RandomSearch",
    "Run",
    "Reflect",
    "ReplicateBaseline",
    "ReproducibilityBoundWarning",
    "SoftClip",
    "SoftReadout",
    "SoftUtility",
    "StepInfo",
    "StraightThroughReadout",
    "TanhRegulator",
    "TargetPattern",
    "Tissue",
    "TrainResult",
    "TranscriptionalRegulator",
    "Unconstrained",
    "Utility",
    "VirtualTreeNoise",
    "assess",
    "available_memory",
    "binary_entropy",
    "compare",
    "config",
    "constraint",
    "count_parameters",
    "default_optimiser",
    "diagnostics",
    "discovery",
    "estimators",
    "explore",
    "from_config",
    "hard_utility",
    "load",
    "load_library",
    "load_run",
    "noise",
    "observe",
    "openes",
    "pattern_entropy",
    "save",
    "soft_utility",
    "train",
]
