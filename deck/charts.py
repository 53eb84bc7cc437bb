"""The deck's charts: Altair specifications built from the query module's frames (no I/O here)."""

from __future__ import annotations

import altair as alt
import pandas as pd

SCORE_SCALE = alt.Scale(domain=[1, 10], scheme="viridis")
STATUS_COLORS = alt.Scale(
    domain=["at the bottom", "grace", "safe", "not rated yet"],
    range=["#d62728", "#2ca02c", "#4c78a8", "#9d9d9d"],
)
# a filled ✕ (Vega's own "cross" is a +), as an SVG path in Vega's unit square
ELIMINATION_SHAPE = "M-1,-0.6L-0.6,-1L0,-0.4L0.6,-1L1,-0.6L0.4,0L1,0.6L0.6,1L0,0.4L-0.6,1L-1,0.6L-0.4,0Z"


def vote_heatmap(cells: pd.DataFrame, voters: list[str], columns: list[str], *, committed: bool) -> alt.LayerChart:
    """Voter × target (or voter × reading position while the epoch runs), hover for score and rationale.

    `cells` has voter, column (target name or reading position), score, masked_label, rationale.
    """
    column_title = "target (unmasked: the epoch is committed)" if committed else "what the voter read, in order"
    tooltip = [
        alt.Tooltip("voter:N", title="voter"),
        alt.Tooltip("masked_label:N", title="label the voter saw"),
        alt.Tooltip("column:N", title="target" if committed else "read"),
        alt.Tooltip("score:Q", title="insight score"),
        alt.Tooltip("rationale:N", title="rationale"),
    ]
    base = alt.Chart(cells).encode(
        x=alt.X("column:N", sort=columns, scale=alt.Scale(domain=columns), title=column_title,
                axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("voter:N", sort=voters, scale=alt.Scale(domain=voters), title="voter"),
    )
    rects = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("score:Q", scale=SCORE_SCALE, title="score"), tooltip=tooltip
    )
    labels = base.mark_text(fontSize=16, fontWeight="bold").encode(
        text=alt.Text("score:Q", format="d"),
        color=alt.condition(alt.datum.score >= 6, alt.value("black"), alt.value("white")),
        tooltip=tooltip,
    )
    height = max(180, 56 * len(voters))
    return alt.layer(rects, labels).properties(height=height)


def standings_intervals(frame: pd.DataFrame) -> alt.LayerChart:
    """Bradley–Terry ratings with their 95 % intervals (bars) and the Elo rating (diamonds), per agent."""
    order = list(frame["agent"])
    y = alt.Y("agent:N", sort=order, title=None)
    tooltip = [
        alt.Tooltip("agent:N"), alt.Tooltip("status:N"), alt.Tooltip("elo:Q", format=".1f", title="Elo"),
        alt.Tooltip("bt_rating:Q", format=".1f", title="Bradley–Terry"),
        alt.Tooltip("bt_lower:Q", format=".1f", title="BT lower 2.5 %"),
        alt.Tooltip("bt_upper:Q", format=".1f", title="BT upper 97.5 %"),
    ]
    color = alt.Color("status:N", scale=STATUS_COLORS, title="status")
    base = alt.Chart(frame).encode(y=y, tooltip=tooltip)
    interval = base.mark_rule(strokeWidth=6, opacity=0.45).encode(
        x=alt.X("bt_lower:Q", scale=alt.Scale(zero=False), title="rating"), x2="bt_upper:Q", color=color
    )
    bt = base.mark_point(filled=True, size=90).encode(x="bt_rating:Q", color=color)
    elo = base.mark_point(shape="diamond", size=110, filled=False, strokeWidth=2, color="black").encode(x="elo:Q")
    return alt.layer(interval, bt, elo).properties(height=max(160, 44 * len(order)))


def rating_lines(history: pd.DataFrame, events: pd.DataFrame, *, field: str, title: str,
                 band: tuple[str, str] | None = None, legend: bool = True) -> alt.LayerChart:
    """One line per agent across epochs, an optional interval band, and arrival/elimination marks."""
    color = alt.Color("agent:N", title="agent", legend=alt.Legend() if legend else None)
    x = alt.X("epoch:Q", title="epoch", axis=alt.Axis(format="d"))
    tooltip = [alt.Tooltip("agent:N"), alt.Tooltip("epoch:Q", format="d"), alt.Tooltip(f"{field}:Q", format=".1f")]
    layers = []
    base = alt.Chart(history).encode(x=x, color=color)
    if band is not None:
        layers.append(base.mark_area(opacity=0.12).encode(
            y=alt.Y(f"{band[0]}:Q", scale=alt.Scale(zero=False), title=title), y2=f"{band[1]}:Q"))
    layers.append(base.mark_line(point=alt.OverlayMarkDef(size=28)).encode(
        y=alt.Y(f"{field}:Q", scale=alt.Scale(zero=False), title=title), tooltip=tooltip))
    if not events.empty:
        shapes = alt.Scale(domain=["arrival", "elimination"], range=["triangle-up", ELIMINATION_SHAPE])
        layers.append(
            alt.Chart(events).mark_point(size=160, filled=True, opacity=0.9).encode(
                x=x, y=alt.Y(f"{field}:Q"), color=color,
                shape=alt.Shape("event:N", scale=shapes, title="event"),
                tooltip=[alt.Tooltip("agent:N"), alt.Tooltip("event:N"), alt.Tooltip("epoch:Q", format="d"),
                         alt.Tooltip("detail:N")],
            )
        )
    return alt.layer(*layers).properties(height=320)


def epoch_timings(frame: pd.DataFrame) -> alt.Chart:
    """Each epoch's duration and the dead time before it, stacked per epoch."""
    long = frame.melt(id_vars=["epoch"], value_vars=["duration_s", "dead_time_s"], var_name="part",
                      value_name="seconds").dropna()
    long["part"] = long["part"].map({"duration_s": "epoch", "dead_time_s": "dead time before it"})
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("epoch:O", title="epoch", axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("seconds:Q", title="seconds", stack=True),
        color=alt.Color("part:N", scale=alt.Scale(domain=["epoch", "dead time before it"],
                                                   range=["#4c78a8", "#e45756"]), title=None),
        tooltip=[alt.Tooltip("epoch:O"), alt.Tooltip("part:N"), alt.Tooltip("seconds:Q", format=".2f")],
    ).properties(height=260)


def calibration_bars(frame: pd.DataFrame) -> alt.LayerChart:
    """Each voter's mean Spearman correlation with the tests (bars, on −1..1) and its 95 % interval (rules).

    `frame` has voter, mean_spearman, lower, upper, epochs.
    """
    order = list(frame["voter"])
    y = alt.Y("voter:N", sort=order, title=None)
    x = alt.X("mean_spearman:Q", scale=alt.Scale(domain=[-1, 1]), title="mean Spearman ρ with the pass rates")
    tooltip = [alt.Tooltip("voter:N"), alt.Tooltip("mean_spearman:Q", format=".2f", title="mean ρ"),
               alt.Tooltip("lower:Q", format=".2f", title="95 % lower"),
               alt.Tooltip("upper:Q", format=".2f", title="95 % upper"), alt.Tooltip("epochs:Q", title="epochs")]
    base = alt.Chart(frame).encode(y=y, tooltip=tooltip)
    bars = base.mark_bar(opacity=0.8).encode(
        x=x, color=alt.condition(alt.datum.mean_spearman >= 0, alt.value("#4c78a8"), alt.value("#e45756")))
    interval = base.mark_rule(strokeWidth=2, color="black").encode(x="lower:Q", x2="upper:Q")
    return alt.layer(bars, interval).properties(height=max(140, 40 * len(order)))
