"""Shared jaxtyping aliases."""

from jaxtyping import Array, Key, UInt32

# A batch of PRNG keys, one per replicate (or sample): new-style typed keys or the
# legacy uint32 pairs.
KeyBatch = Key[Array, " batch"] | UInt32[Array, "batch 2"]
