"""The Metrics page's figures, built from cached evaluation results alone (no Streamlit, no store).

Every chart gives a subject the same colour and the same name, so a run is recognised at a glance
across the bars, the distributions and the scale curve. Plotly draws a subset of HTML in tick labels, legends,
titles and hovers, so label and subject names go in HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from datagen_core.evaluation.evaluator import Evaluation
from datagen_core.evaluation.set_metrics import METRICS

PALETTE = qualitative.Plotly + qualitative.D3
HEIGHT = 340
MARGIN = {"l": 10, "r": 10, "t": 50, "b": 10}


def colours(subjects: Sequence[str]) -> dict[str, str]:
    return {subject: PALETTE[i % len(PALETTE)] for i, subject in enumerate(subjects)}


def training_name(ev: Evaluation) -> str:
    """What a downstream classifier was trained on, as the comparison table names it (mode, ratio, n)."""
    result = ev.result
    name = f"{result['mode']} {result['trainer']}"
    if result["mode"] == "mixed" and ev.params.get("mix_ratio") is not None:
        name += f" ×{ev.params['mix_ratio']:g}"
    if result.get("synthetic_per_label") is not None:
        name += f" n={result['synthetic_per_label']}"
    return name


def _layout(fig: go.Figure, title: str, **extra: object) -> go.Figure:
    fig.update_layout(**{"title": title, "height": HEIGHT, "margin": MARGIN, "legend": {"orientation": "h", "y": -0.2},
                         **extra})
    return fig


def summary_bars(
    metrics: Sequence[Evaluation], downstream: Sequence[Evaluation], names: Mapping[str, str]
) -> go.Figure:
    """The charted metrics' headline figures per subject (APS, CMD, self-BLEU), and macro-F1 per subject and
    training set, two panels a row."""
    palette = colours(list(names))
    charted = [metric for metric in METRICS.values() if metric.charted]
    panels = [f"{metric.title} ({metric.reading})" for metric in charted] + ["macro-F1 on the held-out data"]
    rows = -(-len(panels) // 2)
    fig = make_subplots(rows=rows, cols=2, subplot_titles=panels, horizontal_spacing=0.08, vertical_spacing=0.2)
    for position, metric in enumerate(charted):
        field = metric.headline()
        shown = [ev for ev in metrics if ev.result.get(field) is not None]
        fig.add_trace(go.Bar(x=[html.escape(names[ev.subject]) for ev in shown], y=[ev.result[field] for ev in shown],
                             marker_color=[palette[ev.subject] for ev in shown], showlegend=False,
                             hovertemplate="%{x}: %{y:.3f}<extra></extra>"),
                      row=position // 2 + 1, col=position % 2 + 1)
    fig.add_trace(go.Bar(x=[f"{html.escape(names[ev.subject])}<br>{training_name(ev)}" for ev in downstream],
                         y=[ev.result["macro_f1"] for ev in downstream],
                         marker_color=[palette[ev.subject] for ev in downstream], showlegend=False,
                         hovertemplate="%{x}: %{y:.3f}<extra></extra>"),
                  row=len(charted) // 2 + 1, col=len(charted) % 2 + 1)
    fig.update_yaxes(range=[0, 1], row=len(charted) // 2 + 1, col=len(charted) % 2 + 1)
    fig.update_layout(height=rows * HEIGHT, margin=MARGIN)
    return fig


def label_distribution(metrics: Sequence[Evaluation], names: Mapping[str, str]) -> go.Figure:
    """Each subject's share of texts per label (counts in the hover): sets of any size compare directly."""
    palette = colours(list(names))
    fig = go.Figure()
    for ev in metrics:
        counts = ev.result["label_counts"]
        total = sum(counts.values()) or 1
        fig.add_trace(go.Bar(x=[html.escape(label) for label in counts], y=[n / total for n in counts.values()],
                             name=html.escape(names[ev.subject]),
                             marker_color=palette[ev.subject], customdata=list(counts.values()),
                             hovertemplate="%{x}: %{y:.0%} (%{customdata} texts)<extra>%{fullData.name}</extra>"))
    fig.update_yaxes(tickformat=".0%", title="share of texts")
    return _layout(fig, "Label distribution", barmode="group")


def length_distribution(metrics: Sequence[Evaluation], names: Mapping[str, str]) -> go.Figure:
    """Share of texts by length in words, one line per subject."""
    palette = colours(list(names))
    fig = go.Figure()
    for ev in metrics:
        pairs = ev.result["length_counts"]
        total = sum(n for _, n in pairs) or 1
        fig.add_trace(go.Scatter(x=[words for words, _ in pairs], y=[n / total for _, n in pairs],
                                 mode="lines+markers", name=html.escape(names[ev.subject]),
                                 line={"color": palette[ev.subject]},
                                 customdata=[n for _, n in pairs],
                                 hovertemplate="%{x} words: %{y:.0%} (%{customdata} texts)<extra></extra>"))
    fig.update_xaxes(title="words")
    fig.update_yaxes(tickformat=".0%", title="share of texts")
    return _layout(fig, "Length distribution")


def cmd_per_label(metrics: Sequence[Evaluation], names: Mapping[str, str]) -> go.Figure:
    """CMD to the real seeds of the same label, one bar group per label: which label drifted furthest."""
    palette = colours(list(names))
    fig = go.Figure()
    for ev in metrics:
        per_label = ev.result["cmd_per_label"]
        if per_label:
            fig.add_trace(go.Bar(x=[html.escape(label) for label in per_label], y=list(per_label.values()),
                                 name=html.escape(names[ev.subject]),
                                 marker_color=palette[ev.subject],
                                 hovertemplate="%{x}: %{y:.3f}<extra>%{fullData.name}</extra>"))
    fig.update_yaxes(title="CMD (lower: closer)")
    return _layout(fig, "CMD per label (vs the real seeds of that label)", barmode="group")


def scale_curve(
    curves: Mapping[str, Sequence[Evaluation]], names: Mapping[str, str], metric: str, reference: float | None
) -> go.Figure:
    """F1 against synthetic samples per label, one line per run; the real seeds' F1 as a dashed reference."""
    palette = colours(list(names))
    fig = go.Figure()
    for subject, points in curves.items():
        fig.add_trace(go.Scatter(x=[p.params["per_label"] for p in points], y=[p.result[metric] for p in points],
                                 mode="lines+markers", name=html.escape(names[subject]),
                                 line={"color": palette[subject]},
                                 customdata=[p.result["n_train"] for p in points],
                                 hovertemplate="%{x} per label: %{y:.3f} (trained on %{customdata})<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="#555555",
                      annotation_text=f"real seeds only: {reference:.3f}", annotation_position="bottom right")
    label = metric.replace("_f1", "-F1")
    fig.update_xaxes(title="synthetic samples per label")
    fig.update_yaxes(title=label, range=[0, 1.02])
    return _layout(fig, f"Scale curve ({label} on held-out data)", height=HEIGHT + 60)


def confusion(result: Mapping[str, Any], title: str) -> go.Figure:
    """Counts of true (rows) against predicted (columns) labels on the held-out data."""
    labels = [html.escape(label) for label in result["labels"]]
    fig = go.Figure(go.Heatmap(z=result["confusion"], x=labels, y=labels, colorscale="Blues", texttemplate="%{z}",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_xaxes(title="predicted", side="bottom")
    fig.update_yaxes(title="true", autorange="reversed")
    side = min(620, 220 + 50 * len(labels))
    fig.update_layout(title=html.escape(title), height=side, width=side + 120, margin=MARGIN)
    return fig
