"""The timeline figure of report.html: matplotlib to inline SVG.

matplotlib is imported here only, when a report is drawn: scenario parsing and the other
unit tests never pay for it. No pyplot (no global figure state, no GUI backend): a Figure
saved through the SVG backend. Glyphs become paths (`svg.fonttype: path`) so the browser
needs no font, and `svg.hashsalt` is fixed so the same data gives the same bytes.

Artists that tests and readers look for carry an SVG id (`set_gid`): `series-rx-q0`,
`pressure-0`, `event-0`, `stall-evidence`, `pool-12`...
"""

import io
import math
import re
from typing import Any

from .data import Line, RunData

QUEUE_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22", "#7f7f7f"]
PRESSURE = "#ff9900"
STALL = "#d62728"
EVENT = "#444444"
LEAK = "#d62728"
FIG_WIDTH = 12.0  # inches
PLOT_LEFT, PLOT_RIGHT = 1.1, 1.75  # inches: y tick labels; the legends' column
ROW_PRESSURE, ROW_STALL, ROW_TEARDOWN = 3.1, 2.15, 0.85  # the top strip's rows
TEARDOWN_LANES = (1.4, 0.85, 0.3)  # labels of events close together go on the next lane
MAX_EVENT_LABELS = 12  # past this (xdp-cycles: 100): marks only, the count on the axis

RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "bqlab-report",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "path.simplify": True,
}


def _plot(ax: Any, line: Line, gid: str, **kw: Any) -> None:
    if not line.t or all(math.isnan(y) for y in line.y):
        return
    (artist,) = ax.plot(line.t, line.y, **kw)
    artist.set_gid(gid)


def _queue_style(d: RunData, q: int) -> dict[str, Any]:
    stalled = d.stall is not None and d.stall.queue == q
    return {"color": QUEUE_COLORS[q % len(QUEUE_COLORS)], "lw": 2.2 if stalled else 1.3,
            "zorder": 3 if stalled else 2}


def _queue_label(d: RunData, q: int) -> str:
    stalled = d.stall is not None and q in _stalled_queues(d)
    return f"queue {q}" + (" (STALL)" if stalled else "")


def _stalled_queues(d: RunData) -> list[int]:
    v = d.verdict("rx-stall") or {}
    return list(v.get("stalled_queues") or ([d.stall.queue] if d.stall else []))


def _counts(ax: Any) -> None:
    """A count axis: from 0, integer ticks, not squashed to nothing when all zero."""
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))


def _panel_rx(ax: Any, d: RunData) -> None:
    ax.set_title("guest rx packets/s, per queue (qstats rx-packets)")
    for q, line in d.rx_rate.items():
        _plot(ax, line, f"series-rx-q{q}", drawstyle="steps-pre", label=_queue_label(d, q),
              **_queue_style(d, q))


def _panel_drops(ax: Any, d: RunData) -> None:
    ax.set_title("device drops/s for lack of buffers (solid: sbq, dashed: lbq; dotted: "
                 "queue stopped by a DMA error)" if d.drops_stopped else
                 "device drops/s for lack of buffers (solid: sbq, dashed: lbq)")
    for q in d.drops_sbq:
        style = _queue_style(d, q)
        _plot(ax, d.drops_sbq[q], f"series-drop-sbq-q{q}", drawstyle="steps-pre",
              label=f"queue {q} sbq", **style)
        _plot(ax, d.drops_lbq[q], f"series-drop-lbq-q{q}", drawstyle="steps-pre", ls="--",
              label=f"queue {q} lbq", **style)
        if q in d.drops_stopped:  # frames for a queue a DMA error stopped
            _plot(ax, d.drops_stopped[q], f"series-drop-stopped-q{q}", drawstyle="steps-pre",
                  ls=":", label=f"queue {q} stopped (DMA error)", **style)


def _panel_owned(ax: Any, d: RunData) -> None:
    ax.set_title("buffers owned by the device (solid: sbq, dashed: lbq)")
    for q in d.sbq_owned:
        style = _queue_style(d, q)
        _plot(ax, d.sbq_owned[q], f"series-sbq-owned-q{q}", label=f"queue {q} sbq", **style)
        _plot(ax, d.lbq_owned[q], f"series-lbq-owned-q{q}", ls="--", label=f"queue {q} lbq",
              **style)
    _counts(ax)


def _panel_alloc_fail(ax: Any, d: RunData) -> None:
    ax.set_title("rx-alloc-fail, cumulative per queue")
    for q, line in d.alloc_fail.items():
        _plot(ax, line, f"series-alloc-fail-q{q}", drawstyle="steps-post",
              label=f"queue {q}", **_queue_style(d, q))
    _counts(ax)


def _panel_pools(ax: Any, d: RunData) -> None:
    ax.set_title("page_pool inflight pages, per pool id (red: leaked; x: destroyed)")
    few = len(d.pools) <= 8
    for i, (pid, line) in enumerate(d.pools.items()):
        leaked = pid in d.leaked
        color = LEAK if leaked else QUEUE_COLORS[i % len(QUEUE_COLORS)]
        label = f"pool {pid} LEAK ({d.leaked[pid]})" if leaked else \
            (f"pool {pid}" if few else None)
        _plot(ax, line, f"pool-{pid}", color=color, lw=2.4 if leaked else 1.0,
              alpha=1.0 if leaked or few else 0.6, zorder=4 if leaked else 2, label=label)
        if pid in d.pool_detached:
            t = d.pool_detached[pid]
            y = next((y for tt, y in zip(line.t, line.y, strict=True) if tt == t), None)
            if y is not None and not math.isnan(y):
                ax.plot([t], [y], marker="x", color=color, ms=6, mew=1.8, zorder=5)
    _counts(ax)


def _lanes(d: RunData, items: list[tuple[float, str]]) -> list[float]:
    """A y for each (x, label), left to right, so that labels do not run into each other:
    the first lane whose last label ended before this one starts (estimated widths)."""
    plot_pt = 72 * (FIG_WIDTH - PLOT_LEFT - PLOT_RIGHT)
    per_char = 4.4 / plot_pt * max(d.end, 1.0)  # 7.5-point text, in seconds of x axis
    ends = [-1e9] * len(TEARDOWN_LANES)
    out = []
    for x, label in items:
        lane = next((i for i, e in enumerate(ends) if x > e), None)
        if lane is None:
            lane = min(range(len(ends)), key=lambda i: ends[i])
        ends[lane] = x + (len(label) + 3) * per_char
        out.append(TEARDOWN_LANES[lane])
    return out


def _panel_phases(ax: Any, d: RunData) -> None:
    """The top strip: what the harness did and what the verdict found, labelled. The data
    panels below carry the same spans and lines, unlabelled."""
    ax.set_title("what happened")
    ax.set_ylim(0, 3.6)
    ax.set_yticks([ROW_PRESSURE, ROW_STALL, ROW_TEARDOWN],
                  ["pressure", "rx stall",
                   f"teardown ({len(d.events)})" if d.events else "teardown"])
    ax.tick_params(axis="y", length=0)
    ax.grid(False)
    if not d.pressure:
        ax.text(0.005, ROW_PRESSURE, "no pressure phase", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color="#888888")
    rx_stall = d.verdict("rx-stall")
    if d.stall is None:
        text = f"{rx_stall['verdict']}: {rx_stall['reason']}" if rx_stall else "not judged"
        ax.text(0.005, ROW_STALL, text, transform=ax.get_yaxis_transform(), va="center",
                fontsize=8, color="#1a7f37" if rx_stall and rx_stall["verdict"] == "PASS"
                else "#888888")
    bar = (-0.38, 0.76)  # a bar's bottom and height around its row
    for i, (a, b) in enumerate(d.pressure):
        ax.broken_barh([(a, b - a)], (ROW_PRESSURE + bar[0], bar[1]), color=PRESSURE,
                       alpha=0.6).set_gid(f"pressure-{i}")
        ax.text((a + b) / 2, ROW_PRESSURE, f"memory pressure {b - a:.1f}s", ha="center",
                va="center", fontsize=8, color="#5c3800")
    if d.stall is not None:
        a, b = d.stall.evidence
        ax.broken_barh([(a, b - a)], (ROW_STALL + bar[0], bar[1]), facecolor="none",
                       edgecolor=STALL, hatch="///", lw=0.8).set_gid("stall-evidence")
        where = d.stall.evidence
        if d.stall.counted:
            where = d.stall.counted
            ax.broken_barh([(where[0], where[1] - where[0])], (ROW_STALL + bar[0], bar[1]),
                           color=STALL).set_gid("stall-counted")
        ax.text(where[0], ROW_STALL, f"STALL: queue {d.stall.queue} {d.stall.buffer_queue} "
                f"starved, rx frozen {d.stall.stalled_for:.1f}s", ha="left", va="center",
                fontsize=8.5, color=STALL, weight="bold", clip_on=False,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": STALL, "lw": 0.8})
    label_each = len(d.events) <= MAX_EVENT_LABELS
    marks = [(ev["end"], ev["what"] if label_each else "", f"event-{i}", "v", EVENT)
             for i, ev in enumerate(d.events)]
    if d.sinks_closed_at is not None:
        marks.append((d.sinks_closed_at, "sinks closed", "sinks-closed", "|", "#777777"))
    marks.sort(key=lambda m: m[0])
    ys = _lanes(d, [(x, label) for x, label, *_ in marks]) if label_each else \
        [ROW_TEARDOWN] * len(marks)
    for (x, label, gid, marker, color), y in zip(marks, ys, strict=True):
        ax.plot([x], [y], marker=marker, color=color, ms=6 if label_each else 3, mew=1.5,
                ls="none")[0].set_gid(gid)
        if label:
            ax.text(x, y, f"  {label}", ha="left", va="center", fontsize=7.5, color=color)


def _shade(axes: list[Any], d: RunData) -> None:
    """The same spans and event lines across the data panels, for reading values off."""
    for ax in axes:
        for a, b in d.pressure:
            ax.axvspan(a, b, color=PRESSURE, alpha=0.16, lw=0, zorder=0)
        if d.stall is not None:
            a, b = d.stall.evidence
            ax.axvspan(a, b, facecolor="none", edgecolor=STALL, hatch="///", alpha=0.25,
                       lw=0, zorder=0)
            if d.stall.counted:
                ax.axvspan(*d.stall.counted, color=STALL, alpha=0.10, lw=0, zorder=0)
        for ev in d.events:
            few = len(d.events) <= MAX_EVENT_LABELS
            ax.axvline(ev["end"], color=EVENT, lw=0.9 if few else 0.4, ls="-.",
                       alpha=0.8 if few else 0.35, zorder=1)
        if d.sinks_closed_at is not None:
            ax.axvline(d.sinks_closed_at, color="#888888", lw=1.0, ls=":", zorder=1)


def timeline_svg(d: RunData) -> str:
    """The figure as an <svg> element (no XML prolog), ready to inline in HTML."""
    import matplotlib
    from matplotlib.figure import Figure

    panels = [_panel_rx]
    if d.has_device:
        panels += [_panel_drops, _panel_owned]
    panels.append(_panel_alloc_fail)
    if d.pools:
        panels.append(_panel_pools)
    with matplotlib.rc_context(RC):
        height = 1.3 + 1.8 * len(panels)
        fig = Figure(figsize=(FIG_WIDTH, height))
        # Fixed margins, not a layout engine: its float noise changes the clip-path ids
        # from one render to the next, and the legends' column is the same on every panel.
        fig.subplots_adjust(left=PLOT_LEFT / FIG_WIDTH, right=1 - PLOT_RIGHT / FIG_WIDTH,
                            top=1 - 0.3 / height, bottom=0.5 / height, hspace=0.42)
        top, *axes = fig.subplots(len(panels) + 1, 1, sharex=True,
                                  height_ratios=[0.9] + [1.0] * len(panels))
        _panel_phases(top, d)
        top.set_gid("panel-phases")
        for ax, panel in zip(axes, panels, strict=True):
            panel(ax, d)
            ax.set_gid(f"panel-{panel.__name__.removeprefix('_panel_')}")
            if ax.get_legend_handles_labels()[0]:
                # Outside, right: never over the data.
                ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
        if d.has_device:
            # rx and drops on one scale: what the guest lost is what the device dropped.
            axes[1].sharey(axes[0])
        axes[0].set_ylim(0, max(1.0, axes[0].get_ylim()[1]))
        axes[-1].set_xlabel("seconds since the watchdog started")
        axes[-1].set_xlim(0, max(d.end, 1.0))
        _shade(axes, d)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def strip_size(svg: str) -> str:
    """Let CSS size the figure: drop the fixed width/height, keep the viewBox."""
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
