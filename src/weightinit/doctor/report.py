"""Reports: per-layer statistics, flags with explanations and fixes, terminal (rich) and HTML rendering.

A :class:`Report` holds one :class:`LayerStats` per recorded layer, in
forward order, and a list of :class:`Flag`.  ``str(report)`` is a plain-text
table; ``rich.print(report)`` renders coloured tables; ``report.to_html(path)``
writes a self-contained page with matplotlib plots embedded as base64 PNG.
A :class:`FixReport` adds the scale applied to each layer and the reports
measured before and after the fix.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from os import PathLike

    from rich.console import Group

__all__ = ["LayerStats", "Flag", "Report", "FixReport"]


@dataclass
class LayerStats:
    """What was measured (and/or predicted) at one layer's output.

    ``q`` is the second moment ``E[y**2]`` of the output; ``std`` and ``mean``
    are over all elements of the batch; ``signal`` is the input-dependent part,
    ``sqrt(mean_units Var_batch(y))``: when it vanishes every example maps to
    the same output (the net has "collapsed") even if biases keep ``std`` up.  ``dead`` is the fraction of units
    (features or channels) that are exactly zero on every example;
    ``saturated`` the fraction of outputs where the activation's derivative is
    near zero (tanh/sigmoid/hardtanh/relu6 at their flat parts).
    ``grad_norms`` maps each parameter name to ``||dL/dp||_2``; ``grad_std``
    is the std of ``dL/dy``, the gradient reaching the output.
    Analytic fields: ``q_pred`` (predicted ``E[y**2]``), ``std_pred`` and ``signal_pred`` (the predicted
    ``std`` and ``signal``, from the cross moment of two inputs: :func:`weightinit.doctor.analytic.signal_map`),
    ``gain`` (``sqrt(q_out / q_in)``) and ``chi`` (Schoenholz et al. 2017's
    ``sigma_w**2 E[phi'(h)**2]`` for activation layers).
    """

    name: str
    kind: str
    depth: int
    shape: tuple[int, ...] = ()
    mean: float = float("nan")
    std: float = float("nan")
    q: float = float("nan")
    signal: float = float("nan")
    dead: float = float("nan")
    saturated: float = float("nan")
    grad_std: float = float("nan")
    grad_norms: dict[str, float] = field(default_factory=dict)
    weight_norm: float = float("nan")  # ||W||_2 of the layer's weight (kernel), for the relative gradient
    q_pred: float = float("nan")
    std_pred: float = float("nan")
    signal_pred: float = float("nan")
    gain: float = float("nan")
    chi: float = float("nan")
    nonfinite: bool = False
    sample: Any = None  # a 1-D sample of output values, for histograms
    note: str = ""

    @property
    def weight_grad(self) -> float:
        """``||dL/dW||`` of the layer's weight (``weight`` or ``kernel``) alone; NaN if not measured."""
        for k in ("weight", "kernel"):
            if k in self.grad_norms:
                return self.grad_norms[k]
        return float("nan")

    @property
    def rel_grad(self) -> float:
        """``||dL/dW|| / ||W||``: the relative change of the weight per unit learning rate; NaN if unknown."""
        w = self.weight_norm
        return self.weight_grad / w if w is not None and w > 0 else float("nan")

    @property
    def grad_norm(self) -> float:
        """The norm of the layer's weight gradient (all its parameters together); NaN if none."""
        if not self.grad_norms:
            return float("nan")
        return math.sqrt(sum(v * v for v in self.grad_norms.values()))


@dataclass
class Flag:
    """A problem found: ``kind`` (vanishing_activations, exploding_gradients, dead, saturated, ...),
    the layer it concerns, a plain explanation and a suggested fix."""

    kind: str
    layer: str
    message: str
    fix: str
    severity: str = "warning"  # "info", "warning" or "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind} at {self.layer}: {self.message} Fix: {self.fix}"


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


@dataclass
class Report:
    """The doctor's findings for one model: ``layers`` (list of :class:`LayerStats`) and ``flags``."""

    title: str = "weightinit doctor"
    framework: str = ""
    mode: str = "measure"  # "measure", "analytic" or both ("measure+analytic")
    layers: list[LayerStats] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loss: float = float("nan")
    #: True when ``loss`` is the doctor's random-projection probe ``sum(y * g) / sqrt(batch)`` (no targets):
    #: a number without meaning as a loss (it is often negative), so it is not printed
    loss_is_probe: bool = False
    batch: int = 0

    # -- views -----------------------------------------------------------------------------
    def layer(self, name: str) -> LayerStats:
        """The statistics of the layer called ``name``; ``KeyError`` if there is none."""
        for s in self.layers:
            if s.name == name:
                return s
        raise KeyError(name)

    def flagged(self, kind: str) -> list[Flag]:
        """The flags of one kind (for example ``"vanishing_activations"``)."""
        return [f for f in self.flags if f.kind == kind]

    @property
    def ok(self) -> bool:
        """True when no flag is a warning or an error."""
        return not any(f.severity in ("warning", "error") for f in self.flags)

    def _columns(self) -> list[tuple[str, Any]]:
        cols: list[tuple[str, Any]] = [
            ("#", lambda s: str(s.depth)),
            ("layer", lambda s: s.name),
            ("kind", lambda s: s.kind),
        ]
        measured = any(not math.isnan(s.std) for s in self.layers)
        predicted = any(not math.isnan(s.q_pred) for s in self.layers)
        if measured:
            cols += [
                ("std", lambda s: _fmt(s.std)),
                ("signal", lambda s: _fmt(s.signal)),
                ("dead", lambda s: _pct(s.dead)),
                ("sat", lambda s: _pct(s.saturated)),
                ("grad(y) std", lambda s: _fmt(s.grad_std)),
                ("|grad W|", lambda s: _fmt(s.grad_norm)),
                ("|grad W|/|W|", lambda s: _fmt(s.rel_grad)),
            ]
        if predicted:
            cols += [
                ("pred rms", lambda s: _fmt(math.sqrt(s.q_pred) if s.q_pred >= 0 else float("nan"))),
                ("pred signal", lambda s: _fmt(s.signal_pred)),
                ("gain", lambda s: _fmt(s.gain)),
                ("chi", lambda s: _fmt(s.chi)),
            ]
        flagged: dict[str, list[str]] = {}
        for f in self.flags:
            flagged.setdefault(f.layer, []).append(f.kind)
        cols.append(("flags", lambda s: ",".join(_SHORT.get(k, k) for k in flagged.get(s.name, []))))
        return cols

    def rows(self, max_rows: int | None = None) -> list[list[str]]:
        cols = self._columns()
        layers = self.layers
        rows = [[fn(s) for _, fn in cols] for s in layers]
        if max_rows is not None and len(rows) > max_rows:
            head = max_rows // 2
            rows = rows[:head] + [["..."] * len(cols)] + rows[-(max_rows - head - 1) :]
        return rows

    def summary(self) -> str:
        """One line: how activation std and gradient norm change from first to last layer."""
        parts = []
        stds = [s.signal for s in self.layers if s.sample is not None and np.isfinite(s.signal)]
        if len(stds) >= 2:
            parts.append(f"signal std {stds[0]:.3g} -> {stds[-1]:.3g}")
        gn = [s.grad_norm for s in self.layers if np.isfinite(s.grad_norm)]
        if len(gn) >= 2:
            parts.append(f"weight-grad norm first {gn[0]:.3g}, last {gn[-1]:.3g}")
        if not math.isnan(self.loss) and not self.loss_is_probe:
            parts.append(f"loss {self.loss:.4g}")
        n = len([f for f in self.flags if f.severity != "info"])
        parts.append(f"{n} problem(s)" if n else "no problems found")
        return "; ".join(parts)

    # -- text ------------------------------------------------------------------------------
    def __str__(self) -> str:
        cols = self._columns()
        rows = self.rows(max_rows=40)
        header = [c for c, _ in cols]
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        lines = [f"{self.title} ({self.framework}, {self.mode}" + (f", batch {self.batch})" if self.batch else ")")]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        lines.append(self.summary())
        for n in self.notes:
            lines.append(f"note: {n}")
        for f in self.flags:
            lines.append(str(f))
        return "\n".join(lines)

    def __rich__(self) -> Group:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        cols = self._columns()
        table = Table(title=f"{self.title} ({self.framework}, {self.mode})", title_justify="left")
        for c, _ in cols:
            table.add_column(c, justify="left" if c in ("layer", "kind", "flags") else "right")
        for r in self.rows(max_rows=30):
            style = "bold red" if r[-1] else None
            table.add_row(*r, style=style)
        parts: list[Any] = [table, Text(self.summary(), style="bold")]
        for n in self.notes:
            parts.append(Text(f"note: {n}", style="dim"))
        colors = {"error": "red", "warning": "yellow", "info": "cyan"}
        for f in self.flags:
            t = Text()
            t.append(f"[{f.severity}] {f.kind} ", style=f"bold {colors.get(f.severity, 'white')}")
            t.append(f"at {f.layer}: ", style="bold")
            t.append(f.message + " ")
            t.append("Fix: ", style="bold green")
            t.append(f.fix)
            parts.append(t)
        return Group(*parts)

    # -- HTML ------------------------------------------------------------------------------
    def figures(self, other: Report | None = None) -> list[tuple[str, str]]:
        """``(caption, base64 PNG)`` pairs: std and gradient norm by depth (with ``other`` overlaid), histograms."""
        return _figures(self, other)

    def to_html(self, path: str | PathLike[str] | None = None, before: Report | None = None) -> str:
        """Write a self-contained HTML page (plots as embedded PNG) to ``path``; return the HTML text."""
        body = [_html_section(self, before)]
        return _write_html(self.title, body, path)


@dataclass
class FixReport:
    """What :func:`weightinit.fix` did: ``scales`` (parameter name -> factor), and the ``before``/``after`` reports."""

    mode: str
    scales: dict[str, float] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)
    before: Report | None = None
    after: Report | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[LayerStats]:
        """The layers of the ``after`` report (empty without one)."""
        return self.after.layers if self.after is not None else []

    @property
    def flags(self) -> list[Flag]:
        """The flags of the ``after`` report (empty without one)."""
        return self.after.flags if self.after is not None else []

    def __str__(self) -> str:
        lines = [f"weightinit fix (mode={self.mode}): rescaled {len(self.scales)} weight(s)"]
        for k, v in list(self.scales.items())[:8]:
            it = self.iterations.get(k)
            lines.append(f"  {k}: x{v:.4g}" + (f" ({it} iteration(s))" if it is not None else ""))
        if len(self.scales) > 8:
            lines.append(f"  ... and {len(self.scales) - 8} more")
        lines += [f"note: {n}" for n in self.notes]
        if self.before is not None:
            lines.append("before: " + self.before.summary())
        if self.after is not None:
            lines.append("after:  " + self.after.summary())
        return "\n".join(lines)

    def __rich__(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = []
        if self.after is not None:
            parts.append(self.after)
        parts.append(Text(f"fix (mode={self.mode}): rescaled {len(self.scales)} weight(s)", style="bold"))
        parts += [Text(f"note: {n}", style="dim") for n in self.notes]
        if self.before is not None:
            parts.append(Text("before: " + self.before.summary(), style="red"))
        if self.after is not None:
            parts.append(Text("after:  " + self.after.summary(), style="green"))
        return Group(*parts)

    def to_html(self, path: str | PathLike[str] | None = None) -> str:
        """Write the fix as a self-contained HTML page (the after/before reports, the scales) to ``path``; return it."""
        sections = []
        if self.after is not None:
            sections.append(_html_section(self.after, self.before, heading=f"After fix ({self.mode})"))
        if self.before is not None:
            sections.append(_html_section(self.before, None, heading="Before fix", plots=False))
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in self.scales.items())
        sections.append(f"<h2>Scales applied</h2><table><tr><th>parameter</th><th>factor</th></tr>{rows}</table>")
        return _write_html("weightinit fix", sections, path)


_SHORT = {
    "vanishing_activations": "vanish-act",
    "exploding_activations": "explode-act",
    "vanishing_gradients": "vanish-grad",
    "exploding_gradients": "explode-grad",
    "dead": "dead",
    "saturated": "saturated",
    "nonfinite": "NaN/inf",
    "not_depth_stable": "unstable",
    "untraceable": "hooks",
}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _series(rep: Report, attr: str):
    xs, ys = [], []
    for s in rep.layers:
        v = getattr(s, attr)
        if v is not None and np.isfinite(v) and v > 0:
            xs.append(s.depth)
            ys.append(v)
    return xs, ys


def _figures(rep: Report, other: Report | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, attr, label in (
        (axes[0], "signal", "activation signal std"),
        (axes[1], "grad_norm", "weight-gradient norm"),
    ):
        pairs = [(rep, "after" if other is not None else "model")] + ([(other, "before")] if other is not None else [])
        drawn = False
        for r, lab in pairs:
            xs, ys = _series(r, attr)
            if not xs and attr == "signal":
                xs, ys = (
                    [s.depth for s in r.layers if s.q_pred > 0],
                    [math.sqrt(s.q_pred) for s in r.layers if s.q_pred > 0],
                )
                lab += " (predicted)"
            if xs:
                ax.semilogy(xs, ys, marker=".", label=lab)
                drawn = True
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} by depth")
        if drawn:
            ax.legend()
    out.append(("Activation std and weight-gradient norm by depth (log scale)", _png(fig)))
    with_samples = [s for s in rep.layers if s.sample is not None and len(s.sample)]
    if with_samples:
        picks = sorted({0, len(with_samples) // 2, len(with_samples) - 1})
        fig, axes = plt.subplots(1, len(picks), figsize=(3.4 * len(picks), 2.8))
        axes = np.atleast_1d(axes)
        for ax, i in zip(axes, picks):
            s = with_samples[i]
            v = np.asarray(s.sample, dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=50, color="tab:blue")
            ax.set_title(f"{s.name} ({s.kind})", fontsize=9)
        out.append(("Histograms of a few layers' outputs", _png(fig)))
    return out


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:nth-child(2),td:nth-child(3){text-align:left}"
    ".flag{margin:.4em 0}.error{color:#b00}.warning{color:#a60}.info{color:#06a}"
)


def _html_section(rep: Report, before: Report | None, heading: str | None = None, plots: bool = True) -> str:
    cols = [c for c, _ in rep._columns()]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rep.rows())
    parts = [f"<h2>{html.escape(heading or rep.title)}</h2>", f"<p><b>{html.escape(rep.summary())}</b></p>"]
    if before is not None:
        parts.append(f"<p>Before: {html.escape(before.summary())}</p>")
    parts += [f"<p><i>note: {html.escape(n)}</i></p>" for n in rep.notes]
    for f in rep.flags:
        parts.append(
            f'<div class="flag {f.severity}"><b>[{f.severity}] {html.escape(f.kind)}</b> at <code>{html.escape(f.layer)}</code>: '
            f"{html.escape(f.message)} <b>Fix:</b> {html.escape(f.fix)}</div>"
        )
    if plots:
        try:
            for cap, png in _figures(rep, before):
                parts.append(
                    f'<figure><img src="data:image/png;base64,{png}"/><figcaption>{html.escape(cap)}</figcaption></figure>'
                )
        except ImportError as e:  # pragma: no cover - matplotlib missing
            parts.append(f"<p>(plots unavailable: {html.escape(str(e))})</p>")
    parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


def _write_html(title: str, sections: list[str], path: str | PathLike[str] | None) -> str:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>" + "\n".join(sections) + "</body></html>"
    )
    if path is not None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return text
