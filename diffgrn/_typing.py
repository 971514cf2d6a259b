"""Shared jaxtyping aliases."""

from jaxtyping import Array, ArrayLike, Bool, Int, Key, Real, UInt32

# A batch of PRNG keys, one per replicate (or sample): new-style typed keys or the
# legacy uint32 pairs.
KeyBatch = Key[Array, " batch"] | UInt32[Array, "batch 2"]

# Scalars as Diffrax annotates them (a Python number or a 0-d array, maybe traced).
RealScalarLike = Real[ArrayLike, ""]
BoolScalarLike = Bool[ArrayLike, ""]
IntScalarLike = Int[ArrayLike, ""]
