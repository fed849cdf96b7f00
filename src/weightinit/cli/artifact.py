"""``weightinit fingerprint | verify | materialize``: initialization as an artifact, from the shell.

* ``weightinit fingerprint MODEL_SPEC --recipe R --seed S``: the digest of
  each parameter and of the model (``--json`` for machine-readable output);
  ``weightinit fingerprint INITIALIZER --shape 512,256 --seed S`` for one tensor.
* ``weightinit verify CHECKPOINT --recipe R --seed S [--model SPEC]``: exit
  status 0 when every tensor equals what the recipe gives, 1 when one does
  not (each one listed), 2 for bad input.
* ``weightinit materialize MODEL_SPEC --recipe R --seed S --out DIR``: write
  the initialized checkpoint (``--format safetensors`` or ``dcp``); under
  ``torchrun`` the ranks share the work (gloo).

MODEL_SPEC: ``path/to/file.py:factory``, ``module:factory``, a local Hugging
Face ``config.json`` (or its directory), or a built-in name (``tiny-llama``,
``llama-7b``, ``NAME@LAYERS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["add_arguments", "run"]

_COMMANDS = ("fingerprint", "verify", "materialize")


def _seed(text: str) -> int:
    try:
        s = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in [0, 2**64); got {text!r}") from None
    if not 0 <= s < 2**64:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in [0, 2**64); got {text!r}")
    return s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the command named by the parser's ``prog`` (``weightinit fingerprint`` etc.)."""
    command = parser.prog.split()[-1]
    if command not in _COMMANDS:
        command = "fingerprint"
    parser.set_defaults(artifact_command=command)
    if command == "verify":
        parser.add_argument("checkpoint", help="a safetensors file, a Hugging Face checkpoint directory or a DCP dir")
        parser.add_argument("--model", default=None, help="MODEL_SPEC (default: from weightinit.json or config.json)")
    else:
        parser.add_argument("model", metavar="MODEL_SPEC" if command == "materialize" else "MODEL_SPEC|INITIALIZER")
    parser.add_argument("--recipe", default="torch", help="recipe name (default: torch)")
    parser.add_argument("--seed", type=_seed, required=True, help="the root seed (an integer)")
    if command == "fingerprint":
        parser.add_argument("--shape", default=None, help="with an initializer name: the tensor shape, e.g. 512,256")
        parser.add_argument("--dtype", default="float32", help="with --shape: the dtype (default float32)")
        parser.add_argument("--json", action="store_true", help="print JSON")
    if command == "verify":
        parser.add_argument("--all", action="store_true", help="list every tensor, not only the failures")
    if command == "materialize":
        parser.add_argument("--out", required=True, help="output directory (must not exist, unless --force)")
        parser.add_argument("--format", choices=("safetensors", "dcp"), default="safetensors")
        parser.add_argument("--max-shard-size", default="5GB", help="bytes per safetensors file (default 5GB)")
        parser.add_argument("--force", action="store_true", help="replace an existing --out")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _init_distributed() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")


def run(args) -> int:
    """Run the command; 0 on success, 1 when verify finds a mismatch, 2 for bad input (message, no traceback)."""
    from weightinit.artifact.errors import VerificationError
    from weightinit.common.errors import WeightinitError

    try:
        return _run(args)
    except VerificationError as e:
        print(str(e) if args.all is False else e.result.report(), file=sys.stdout)
        return 1
    except WeightinitError as e:
        print(f"weightinit {args.artifact_command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weightinit {args.artifact_command}: interrupted; nothing complete was written.", file=sys.stderr)
        return 130
    except ImportError as e:
        print(
            f"weightinit {args.artifact_command}: error: needs {e.name or 'torch'} ({e}); "
            "install it with pip install 'weightinit[torch]'",
            file=sys.stderr,
        )
        return 2


def _run(args) -> int:
    import weightinit as wi
    from weightinit.common.shapes import normalize_shape

    cmd = args.artifact_command
    if cmd == "fingerprint":
        if args.shape is not None:
            try:
                shape = normalize_shape(tuple(int(p) for p in args.shape.strip("()[] ").split(",") if p.strip()))
            except ValueError:
                raise wi.InitializerValueError(
                    f"`--shape` must be comma-separated integers such as 512,256; received --shape={args.shape!r}."
                ) from None
            d = wi.fingerprint(args.model, shape, args.dtype, wi.Stream(args.seed))
            print(json.dumps({"digest": d.hex, "shape": list(d.shape), "dtype": d.dtype}) if args.json else d.hex)
            return 0
        d = wi.fingerprint(args.model, args.recipe, args.seed)
        if args.json:
            print(json.dumps({"digest": d.hex, "params": {k: v.hex for k, v in d.params.items()}}, indent=2))
        else:
            width = max((len(k) for k in d.params), default=0)
            for k, v in d.params.items():
                print(f"{k:<{width}}  {v.hex}")
            print(f"{'model':<{width}}  {d.hex}")
        return 0
    if cmd == "verify":
        r = wi.verify(args.checkpoint, args.recipe, args.seed, model=args.model)
        print(r.report() if args.all else str(r))
        return 0
    _init_distributed()
    r = wi.materialize(
        args.model,
        args.recipe,
        args.seed,
        args.out,
        format=args.format,
        max_shard_size=args.max_shard_size,
        force=args.force,
        progress=not args.quiet,
    )
    print(
        f"wrote {r.n_tensors} tensors ({r.n_params:,} parameters, {r.bytes_written:,} bytes) to {r.out} in "
        f"{r.seconds:.1f} s" + (f"; digest {r.digest}" if r.digest else "")
    )
    return 0
