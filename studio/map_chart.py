"""The Map page's chart: every sample's 2-D embedding, colour = label, symbol = origin, lineage lines on top."""

from __future__ import annotations

import html
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

SYMBOLS = {"real": "circle", "synthetic": "diamond"}
WEBGL_ABOVE = 3000  # points; SVG scatter gets slow beyond a few thousand
FULL_HOVER_MAX = 5000  # points whose hover boxes carry the whole wrapped text (beyond: its first 60 characters)


def _escaped(texts: pd.Series) -> pd.Series:
    """HTML-escaped, vectorised (plotly draws a subset of HTML in hover boxes)."""
    return texts.str.replace("&", "&amp;", regex=False).str.replace("<", "&lt;", regex=False) \
        .str.replace(">", "&gt;", regex=False)


def hover_texts(group: pd.DataFrame) -> list[str]:
    """Each point's hover box for a map of a few thousand points: its text (cut at 280 characters, wrapped at 60),
    escaped, then what the point is."""
    texts = group["text"].astype(str)
    cut = texts.where(texts.str.len() <= 280, texts.str.slice(0, 279) + "…")
    shown = ["<br>".join(html.escape(line) for line in textwrap.wrap(text, 60)) or "(empty)" for text in cut]
    meta = ("<br><b>" + _escaped(group["label"].astype(str)) + "</b> · " + group["origin"].astype(str) + " · "
            + group["status"].astype(str) + " · #" + group["id"].astype(str)).tolist()
    return [text + tail for text, tail in zip(shown, meta, strict=True)]


def snippets(group: pd.DataFrame) -> list[str]:
    """The first 60 characters of each text, escaped: what a large map's hover boxes show (sending every whole
    text of 100,000 points to the browser would cost tens of megabytes; the clicked point's text is shown below)."""
    texts = group["text"].astype(str)
    short = texts.str.slice(0, 60).where(texts.str.len() <= 60, texts.str.slice(0, 59) + "…")
    return _escaped(short).where(short.str.len() > 0, "(empty)").tolist()


def drawn(points: pd.DataFrame, limit: int | None, keep: list[int]) -> pd.DataFrame:
    """At most `limit` of `points` (None: all), always with the ids in `keep` (a selected sample and its parents).

    The choice is a hash of each id, not a random draw: the same points stay drawn when filters change or new
    offspring land, and every label and run keeps its share."""
    if limit is None or len(points) <= limit:
        return points
    rank = (points["id"].to_numpy(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
    chosen = np.zeros(len(points), dtype=bool)
    chosen[np.argpartition(rank, limit - 1)[:limit]] = True
    chosen |= points["id"].isin(keep).to_numpy()
    return points[chosen]


def figure(points: pd.DataFrame, label_order: list[str], lineage: pd.DataFrame | None) -> go.Figure:
    """One trace per label and origin (colour = label, symbol = origin); lineage lines on top."""
    palette = qualitative.Plotly + qualitative.D3
    colours = {label: palette[i % len(palette)] for i, label in enumerate(label_order)}
    scatter = go.Scattergl if len(points) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure()
    full = len(points) <= FULL_HOVER_MAX
    for (label, origin), group in points.groupby(["label", "origin"], sort=False):
        fig.add_trace(scatter(
            # float32 arrays reach the browser as compact typed arrays
            x=group["x"].to_numpy(np.float32), y=group["y"].to_numpy(np.float32), mode="markers",
            name=f"{html.escape(label)} · {origin}",
            marker={"color": colours.get(label, "#888888"), "symbol": SYMBOLS.get(origin, "circle"),
                    "size": 7 if origin == "real" else 9,
                    "opacity": np.where(group["status"].to_numpy() == "rejected", 0.35, 0.85),
                    "line": {"width": 0.5, "color": "white"}},
            customdata=[[i] for i in group["id"].tolist()],  # plain lists: the click returns [id]
            hovertext=hover_texts(group) if full else snippets(group),
            # a large map names label and origin once per trace, not once per point
            hovertemplate="%{hovertext}<extra></extra>" if full
            else f"%{{hovertext}}<br><b>{html.escape(label)}</b> · {origin} · #%{{customdata[0]}}<extra></extra>",
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
