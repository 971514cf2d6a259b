"""diffgrn: differentiable simulation of gene-regulatory fate patterning in JAX."""

from . import diagnostics
from .brownian import CounterBrownianPath, GridBrownianPath
from .compare import Comparison, compare
from .dynamics import Dynamics, ProjectedSolver, available_memory
from . import estimators
from .estimators import AntitheticES, Mixture, Pathwise
from .io import load, save
from .methods import (CMAES, AbstractMethod, Gradient, Hybrid, LinearSchedule,
                      MuPlusLambdaES, StepInfo, default_optimiser, openes)
from .objective import Objective
from .readout import (AbstractReadout, ChainedReadout, HardReadout, SoftReadout,
                      StraightThroughReadout)
from .regulator import (AbstractRegulator, MLPRegulator, TanhRegulator,
                        TranscriptionalRegulator, count_parameters)
from .tissue import Chain, Graph, Lattice, Tissue
from .train import History, TrainResult, assess, train
from .utility import Utility, binary_entropy, hard_utility, pattern_entropy, soft_utility

ES = MuPlusLambdaES

__version__ = "0.2.0"
