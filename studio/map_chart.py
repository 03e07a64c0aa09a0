"""The Map page's chart: every sample's 2-D embedding, colour = label, symbol = origin, lineage lines on top."""

from __future__ import annotations

import html
import textwrap

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

SYMBOLS = {"real": "circle", "synthetic": "diamond"}
WEBGL_ABOVE = 3000  # points; SVG scatter gets slow beyond a few thousand


def hover_text(row: pd.Series) -> str:
    """Wrapped, truncated and HTML-escaped text plus what the point is, for the hover box."""
    text = row["text"] if len(row["text"]) <= 280 else row["text"][:279] + "…"
    wrapped = "<br>".join(html.escape(line) for line in textwrap.wrap(text, 60)) or "(empty)"
    return f"{wrapped}<br><b>{html.escape(row['label'])}</b> · {row['origin']} · {row['status']} · #{row['id']}"


def figure(points: pd.DataFrame, label_order: list[str], lineage: pd.DataFrame | None) -> go.Figure:
    """One trace per label and origin (colour = label, symbol = origin); lineage lines on top."""
    palette = qualitative.Plotly + qualitative.D3
    colours = {label: palette[i % len(palette)] for i, label in enumerate(label_order)}
    scatter = go.Scattergl if len(points) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure()
    for (label, origin), group in points.groupby(["label", "origin"], sort=False):
        fig.add_trace(scatter(
            x=group["x"], y=group["y"], mode="markers", name=f"{html.escape(label)} · {origin}",
            marker={"color": colours.get(label, "#888888"), "symbol": SYMBOLS.get(origin, "circle"),
                    "size": 7 if origin == "real" else 9, "opacity": [0.35 if s == "rejected" else 0.85
                                                                      for s in group["status"]],
                    "line": {"width": 0.5, "color": "white"}},
            customdata=[[int(i)] for i in group["id"]],  # plain lists: the click returns [id]
            hovertext=[hover_text(r) for _, r in group.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>",
        ))
    if lineage is not None and not lineage.empty:
        child = lineage.iloc[0]
        for position, (_, parent) in enumerate(lineage.iloc[1:].iterrows(), start=1):
            fig.add_trace(go.Scatter(
                x=[child["x"], parent["x"]], y=[child["y"], parent["y"]], mode="lines+markers+text",
                line={"color": "#222222", "width": 2, "dash": "solid" if position == 1 else "dot"},
                marker={"size": [0, 16], "symbol": "circle-open", "color": "#222222"},
                text=["", f"parent {position}"], textposition="top center", hoverinfo="skip",
                name=f"parent {position}", showlegend=False,
            ))
        fig.add_trace(go.Scatter(
            x=[child["x"]], y=[child["y"]], mode="markers", hoverinfo="skip", showlegend=False, name="selected",
            marker={"size": 20, "symbol": "star-open", "color": "#222222", "line": {"width": 2}},
        ))
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_title_text="label · origin",
                      dragmode="pan", hovermode="closest", clickmode="event+select")
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False, scaleanchor="x")
    return fig
