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
      unmatched: canonical paths no rule matched (left as they were; their
        records have ``rule=None``; ``strict=True`` raises instead).
      tied: canonical path -> its other paths, for tied parameters.
      residual_projections: module paths found to project into a residual stream.
      n_residual: residual additions found (2 per GPT-style layer).
      buffers_reset: modules whose running statistics were reset.
      seed: the 64-bit root seed used.
    """

    records: dict = field(default_factory=dict)
    unmatched: list = field(default_factory=list)
    tied: dict = field(default_factory=dict)
    residual_projections: list = field(default_factory=list)
    n_residual: int = 0
    buffers_reset: list = field(default_factory=list)
    seed: int | None = None

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
        if self.unmatched:
            lines.append(
                "unmatched: "
                + ", ".join(f"{u} ({self.records[u].module_type})" if u in self.records else u for u in self.unmatched)
                + " -- left as they were (strict=True raises)"
            )
        return "\n".join(lines)
