"""weightinit: neural-network weight initialization, the same bits on every framework and device.

The package is layered; each layer imports only the ones before it (docs/architecture.md):

``common`` (errors, checks, shapes, dtypes) -> ``random`` (Philox bits, streams, seeds, special
functions, distributions, sampling) -> ``executors`` (NumPy reference, compiled C core, torch,
Triton, JAX) -> ``initializers`` (base, one module per family, fans, gains, storage, framework
defaults) -> ``registry`` (names, get/serialize/register) -> adapters ``torch``, ``jax``,
``keras`` (imported only on request; the layers before them never import a framework) ->
``doctor`` and ``cli``.  This module only re-exports the public names.

>>> import weightinit as wi
>>> w = wi.HeNormal(seed=0)((512, 256))
>>> w.shape, w.dtype
((512, 256), dtype('float32'))
"""

from typing import TYPE_CHECKING

from weightinit import random
from weightinit.artifact import fingerprint, materialize, verify
from weightinit.common.dtypes import floatx, set_floatx, standardize_dtype
from weightinit.common.errors import (
    FallbackWarning,
    InitializerTypeError,
    InitializerValueError,
    UnseededReuseWarning,
    WeightinitError,
)
from weightinit.executors.compiled import get_num_threads, set_num_threads
from weightinit.initializers.base import BuiltinInitializer, Initializer, RandomInitializer, generate
from weightinit.initializers.complex import ComplexDisk, ComplexTruncatedNormal
from weightinit.initializers.constant import Constant, Identity, Ones, Zeros
from weightinit.initializers.dirac import DeltaOrthogonal, Dirac
from weightinit.initializers.fans import compute_fans
from weightinit.initializers.framework_defaults import (
    FlaxEmbed,
    HaikuLinear,
    TorchEmbedding,
    TorchLinearBias,
    TorchLinearWeight,
)
from weightinit.initializers.gains import calculate_gain, gain_for
from weightinit.initializers.haiku_extras import BatchedIdentity, UniformScaling
from weightinit.initializers.orthogonal import Orthogonal
from weightinit.initializers.random_values import RandomNormal, RandomUniform, TruncatedNormal
from weightinit.initializers.schemes import Fixup, MuP, ScaledResidual, TFixup
from weightinit.initializers.sparse import MartensSparse, Sparse
from weightinit.initializers.stft import STFT
from weightinit.initializers.truncated import (
    HaikuTruncatedNormal,
    JaxTruncatedNormal,
    TimmTruncNormalTF,
    TorchTruncNormal,
    TruncNormal,
)
from weightinit.initializers.variance_scaling import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
)
from weightinit.initializers.zero import IRNN, ZerO
from weightinit.random.distributions import Normal, TruncatedNormalDistribution, Uniform
from weightinit.random.sampling import current_executor, sample, use_executor
from weightinit.random.seeds import SeedGenerator, set_seed
from weightinit.random.streams import Stream
from weightinit.registry.api import deserialize, get, register, serialize

__version__ = "0.1.0"


if TYPE_CHECKING:  # for type checkers: the callable packages and the lazy fix below behave as these functions
    from weightinit.doctor.api import doctor, fix
    from weightinit.random.sampling import executors
else:
    # ``weightinit.doctor`` and ``weightinit.executors`` are packages whose module type is callable:
    # ``wi.doctor(model, inputs)`` runs the doctor, ``wi.executors()`` lists executor names, and
    # ``import weightinit.doctor.report`` or ``wi.executors.compiled`` still reach their modules.
    from weightinit import doctor, executors

    def fix(model, mode="analytic", inputs=None, **kwargs):
        """Rescale ``model``'s weights (``"analytic"`` or ``"lsuv"``); see :func:`weightinit.doctor.api.fix` (lazy)."""
        from weightinit.doctor.api import fix as _fix

        return _fix(model, mode, inputs, **kwargs)


# snake_case aliases: the same class objects, as in keras.initializers.  They stay importable and
# resolve through get(), but __all__ lists each object once, under its class name.
zeros = zero = Zeros
ones = one = Ones
constant = Constant
identity = IdentityInitializer = Identity
stft = STFTInitializer = STFT
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
he_uniform = HeUniform
he_normal = HeNormal
orthogonal = OrthogonalInitializer = Orthogonal
trunc_normal = TruncNormal
torch_trunc_normal = TorchTruncNormal
trunc_normal_tf = TimmTruncNormalTF
jax_truncated_normal = JaxTruncatedNormal
haiku_truncated_normal = HaikuTruncatedNormal
dirac = Dirac
delta_orthogonal = DeltaOrthogonal
batched_identity = BatchedIdentity
uniform_scaling = UniformScaling
sparse = Sparse
martens_sparse = MartensSparse
zero_init = ZerO
irnn = IRNN
scaled_residual = ScaledResidual
fixup = Fixup
t_fixup = TFixup
mup = MuP
torch_linear_weight = TorchLinearWeight
torch_linear_bias = TorchLinearBias
torch_embedding = TorchEmbedding
flax_embed = FlaxEmbed
haiku_linear = HaikuLinear

__all__ = [
    "__version__",
    # base and helpers
    "Initializer",
    "BuiltinInitializer",
    "RandomInitializer",
    "generate",
    "compute_fans",
    "calculate_gain",
    "gain_for",
    # seeds and streams
    "Stream",
    "SeedGenerator",
    "set_seed",
    # distributions and sampling
    "Normal",
    "Uniform",
    "TruncatedNormalDistribution",
    "ComplexDisk",
    "ComplexTruncatedNormal",
    "sample",
    "executors",
    "use_executor",
    "set_num_threads",
    "get_num_threads",
    "current_executor",
    "random",
    # dtypes
    "floatx",
    "set_floatx",
    "standardize_dtype",
    # names and configs
    "get",
    "serialize",
    "deserialize",
    "register",
    # the doctor
    "doctor",
    "fix",
    # errors and warnings
    "WeightinitError",
    "InitializerValueError",
    "InitializerTypeError",
    "UnseededReuseWarning",
    "FallbackWarning",
    # Keras initializers
    "Zeros",
    "Ones",
    "Constant",
    "Identity",
    "STFT",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "LecunUniform",
    "LecunNormal",
    "HeUniform",
    "HeNormal",
    "Orthogonal",
    # beyond Keras (issue 7)
    "TruncNormal",
    "TorchTruncNormal",
    "TimmTruncNormalTF",
    "JaxTruncatedNormal",
    "HaikuTruncatedNormal",
    "Dirac",
    "DeltaOrthogonal",
    "BatchedIdentity",
    "UniformScaling",
    "Sparse",
    "MartensSparse",
    "ZerO",
    "IRNN",
    "ScaledResidual",
    "Fixup",
    "TFixup",
    "MuP",
    "TorchLinearWeight",
    "TorchLinearBias",
    "TorchEmbedding",
    "FlaxEmbed",
    "HaikuLinear",
    "fingerprint",
    "verify",
    "materialize",
]
