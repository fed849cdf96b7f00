"""Initialization as a verifiable artifact: fingerprint, verify and materialize (docs/artifact.md).

weightinit's value at every flat index of a parameter depends only on the
parameter's stream and the index, so an initialized model is described by its
recipe and seed alone.  This package computes the digest of what a recipe
would produce (:func:`fingerprint`), checks a model or checkpoint against it
(:func:`verify`), and writes an initialized checkpoint parameter by parameter
without holding the model (:func:`materialize`).

The core of the digest (:mod:`.fingerprint`) imports no framework; models and
checkpoints import torch (and safetensors) when used.
"""

from weightinit.artifact.errors import CheckpointError, VerificationError
from weightinit.artifact.fingerprint import (
    CHUNK,
    DIGEST_VERSION,
    ModelDigest,
    ShardDigest,
    TensorDigest,
    combine,
    fingerprint,
)
from weightinit.artifact.materialize import MaterializeResult, materialize
from weightinit.artifact.verify import ParamCheck, VerifyResult, verify

__all__ = [
    "fingerprint",
    "materialize",
    "MaterializeResult",
    "verify",
    "VerifyResult",
    "ParamCheck",
    "VerificationError",
    "CheckpointError",
    "combine",
    "TensorDigest",
    "ModelDigest",
    "ShardDigest",
    "DIGEST_VERSION",
    "CHUNK",
]
