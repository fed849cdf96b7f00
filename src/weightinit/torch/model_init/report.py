"""The report :func:`~weightinit.torch.initialize` returns: one record per parameter, and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ParamRecord", "InitReport"]


@dataclass
class ParamRecord:
    """How one parameter was initialized (``rule`` and ``initializer`` are None when no rule matched).

    ``module_type`` is the class name of the module owning the parameter.
    """

    path: str
    shape: tuple
    dtype: str
    kind: str
    role: str
    fan_in: int
    fan_out: int
    rule: str | None
    initializer: str | None
    aliases: tuple = ()
    residual: bool = False
    module_type: str = ""


@dataclass
class InitReport:
    """What :func:`initialize` did: one :class:`ParamRecord` per (canonical) parameter.

    Attributes:
      records: canonical path -> record, in ``named_parameters`` order.
      unmatched: canonical paths no rule matched (given their module's own
        init, listed in ``own_init``, or left as they were with
        ``unmatched="keep"``, their records then having ``rule=None``;
        ``strict=True`` raises instead).
      tied: canonical path -> its other paths, for tied parameters.
      residual_projections: module paths found to project into a residual stream.
      n_residual: residual additions found (2 per GPT-style layer).
      buffers_reset: buffers recomputed (``initialize(reset_buffers=True)``, the
        default): normalization running statistics, rotary frequencies,
        position ids... (see :mod:`weightinit.torch.model_init.own`).
      buffer_init: buffer path -> the code that computed it.
      buffers_unknown: buffers no code of the model computes (left as they
        are, with a warning; ``strict=True`` refuses them).
      seed: the 64-bit root seed used.
      own_init: canonical path -> the module init that gave it its value, for
        parameters no rule matched (``unmatched="own_init"``).
      ties_restored: ``"target -> source"`` for each tie a model declares
        (Hugging Face's ``tie_weights``) that was broken (by ``to_empty``) and restored.
      roles_unknown: parameters (2-D and more) whose role could not be found
        when the recipe needs roles (not read by the recorded forward, or
        in a module torch.fx could not trace); ``strict=True`` refuses them.
      roles_method: how roles were found: ``"forward"`` (a recorded forward
        pass), ``"fx"``, ``"explicit"``, ``"marked"``, or ``""`` (not needed).
      module_roles: module path -> role found (``attn_q``, ``mlp_out``, ``head``, ...).
    """

    records: dict = field(default_factory=dict)
    unmatched: list = field(default_factory=list)
    tied: dict = field(default_factory=dict)
    residual_projections: list = field(default_factory=list)
    n_residual: int = 0
    buffers_reset: list = field(default_factory=list)
    buffer_init: dict = field(default_factory=dict)
    buffers_unknown: list = field(default_factory=list)
    seed: int | None = None
    own_init: dict = field(default_factory=dict)
    ties_restored: list = field(default_factory=list)
    roles_unknown: list = field(default_factory=list)
    roles_method: str = ""
    module_roles: dict = field(default_factory=dict)

    def __getitem__(self, path: str) -> ParamRecord:
        return self.records[path]

    def __iter__(self):
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        head = ("parameter", "shape", "kind", "fans", "rule", "initializer")
        rows = [
            (
                r.path + (" (tied: " + ", ".join(r.aliases[1:]) + ")" if len(r.aliases) > 1 else ""),
                "x".join(map(str, r.shape)) or "()",
                r.kind + (" [residual]" if r.residual else ""),
                f"{r.fan_in}/{r.fan_out}",
                r.rule or "-- unmatched --",
                r.initializer or "",
            )
            for r in self.records.values()
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in (head, *rows)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{len(self.records)} parameters, {len(self.unmatched)} unmatched, seed {self.seed}")
        for t in self.ties_restored:
            lines.append(f"tie restored: {t}")
        if self.roles_unknown:
            lines.append("role not found: " + ", ".join(self.roles_unknown))
        kept = [u for u in self.unmatched if u not in self.own_init]
        if self.own_init:
            lines.append("own init: " + ", ".join(f"{p} ({how})" for p, how in self.own_init.items()))
        if self.buffers_unknown:
            lines.append("buffers no code computes (left as they are): " + ", ".join(self.buffers_unknown))
        if kept:
            lines.append(
                "unmatched: "
                + ", ".join(f"{u} ({self.records[u].module_type})" if u in self.records else u for u in kept)
                + " -- left as they were (strict=True raises)"
            )
        return "\n".join(lines)
