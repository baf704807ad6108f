"""Evaluation reports: JSON for machines, Markdown for people, PNG plots, written into one folder.

An `EvalReport` is a title, a headline table and named sections; a table is a list of dict rows, so
speaker ASR, turn taking and a later comparison of runs all use the same writer. Plots draw through
matplotlib's Agg canvas (no pyplot, no global backend change).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from adaptkit.atomic import atomic_dir
from adaptkit.errors import AdaptkitError

REPORT_FILES = ("report.json", "report.md", "report.html", "plots", "decoded.jsonl")
"""What `EvalReport.write` puts in its folder."""


@dataclass
class Plot:
    """One figure, drawn from table rows (`line`, `bar`) or a matrix (`matrix`)."""

    name: str
    """File stem: the plot is written to `plots/<name>.png`."""
    kind: Literal["line", "bar", "matrix"]
    """`line`: column `x` against each column of `y`; `bar`: one bar group per row, one bar per `y`
    column, labelled by `x`; `matrix`: a heat map of `matrix` with its counts written in."""
    title: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    x: str = ""
    y: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)
    """Matrix rows (the true class of a confusion matrix)."""
    col_labels: list[str] = field(default_factory=list)
    """Matrix columns (the predicted class)."""
    xlabel: str = ""
    ylabel: str = ""


@dataclass
class Section:
    """A named part of a report: some text, a table (dict rows) and plots."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    plots: list[Plot] = field(default_factory=list)
    markdown: bool = True
    """False keeps the section out of the Markdown (it stays in the JSON): per-sample rows."""


@dataclass
class EvalReport:
    """Title, header lines, headline table, sections and free metadata."""

    title: str
    headline: list[dict[str, Any]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    """How the numbers were made (normalisation, DER timing source, ...): printed right under the title."""

    def add(self, name: str, rows: Sequence[Mapping[str, Any]] = (), text: str = "",
            plots: Sequence[Plot] = (), markdown: bool = True) -> Section:
        """Append a section and return it."""
        section = Section(name, [dict(r) for r in rows], text, list(plots), markdown)
        self.sections.append(section)
        return section

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: title, header, meta, headline, sections (name, text, rows, plot files)."""
        return _jsonable({
            "title": self.title, "header": self.header, "meta": self.meta, "headline": self.headline,
            "sections": [{"name": s.name, "text": s.text, "rows": s.rows,
                          "plots": [f"plots/{p.name}.png" for p in s.plots]} for s in self.sections],
        })

    def to_markdown(self) -> str:
        """`# title`, the header lines, the headline table, metadata, then each section (text, table, plot links)."""
        out = [f"# {self.title}", ""]
        if self.header:
            out += [f"- {k}: {_cell(v)}" for k, v in self.header.items()] + [""]
        if self.headline:
            out += [markdown_table(self.headline), ""]
        if self.meta:
            out += [f"- {k}: {_cell(v)}" for k, v in self.meta.items()] + [""]
        for s in self.sections:
            if not s.markdown:
                out += [f"## {s.name}", "", f"{len(s.rows)} rows, in report.json.", ""]
                continue
            out += [f"## {s.name}", ""]
            if s.text:
                out += [s.text, ""]
            if s.rows:
                out += [markdown_table(s.rows), ""]
            out += [f"![{p.title or p.name}](plots/{p.name}.png)" for p in s.plots]
            if s.plots:
                out.append("")
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        """A standalone HTML page: the same content as the Markdown, plots inline by file name."""
        from html import escape

        def table(rows: Sequence[Mapping[str, Any]]) -> str:
            cols = list(dict.fromkeys(k for r in rows for k in r))
            head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(self.title)}</title>",
               "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style></head><body>",
               f"<h1>{escape(self.title)}</h1>"]
        if self.header:
            out.append("<ul>" + "".join(f"<li>{escape(str(k))}: {escape(_cell(v))}</li>" for k, v in self.header.items()) + "</ul>")
        if self.headline:
            out.append(table(self.headline))
        if self.meta:
            out.append("<ul>" + "".join(f"<li>{escape(str(k))}: {escape(_cell(v))}</li>" for k, v in self.meta.items()) + "</ul>")
        for s in self.sections:
            out.append(f"<h2>{escape(s.name)}</h2>")
            if s.text:
                out.append(f"<p>{escape(s.text)}</p>")
            if s.rows and s.markdown:
                out.append(table(s.rows))
            out += [f"<img src='plots/{p.name}.png' alt='{escape(p.title or p.name)}'>" for p in s.plots]
        return "\n".join(out + ["</body></html>"]) + "\n"

    def write(self, folder: str | Path, files: Mapping[str, str] | None = None) -> Path:
        """Write report.json, report.md, plots/*.png and `files` (name -> text, e.g. decoded.jsonl)
        into `folder`, all at once.

        The folder is the report's own: it is built beside and swapped in by one rename, so
        readers see the old report or the new one. A folder holding other files is refused.
        """
        folder = Path(folder)
        if folder.exists():
            if not folder.is_dir():
                raise AdaptkitError(f"{folder}: exists and is not a folder")
            stray = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES)
            if stray:
                raise AdaptkitError(f"{folder}: holds other files ({', '.join(stray[:3])}); give the report its own folder")
        with atomic_dir(folder) as tmp:
            (tmp / "report.json").write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
            (tmp / "report.md").write_text(self.to_markdown(), encoding="utf-8")
            for name, text in (files or {}).items():
                if name not in REPORT_FILES:
                    raise ValueError(f"report file {name!r} is not one of {REPORT_FILES}")
                (tmp / name).write_text(text, encoding="utf-8")
            plots = [p for s in self.sections for p in s.plots]
            if plots:
                (tmp / "plots").mkdir()
                for p in plots:
                    draw(p, tmp / "plots" / f"{p.name}.png")
        return folder


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub Markdown table; columns are the keys in order of first appearance."""
    cols: list[str] = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(_esc(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_esc(_cell(r.get(c))) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN and infinities to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def draw(plot: Plot, path: str | Path) -> None:
    """Render `plot` to a PNG file at `path` (Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if plot.kind == "line":
        xs = [_num(r.get(plot.x)) for r in plot.rows]
        for col in plot.y:
            ax.plot(xs, [_num(r.get(col)) for r in plot.rows], marker="o", label=col)
        ax.grid(alpha=0.3)
        if plot.y:
            ax.legend()
    elif plot.kind == "bar":
        cats = [str(r.get(plot.x)) for r in plot.rows]
        width = 0.8 / max(len(plot.y), 1)
        for k, col in enumerate(plot.y):
            ax.bar([i + (k - (len(plot.y) - 1) / 2) * width for i in range(len(cats))],
                   [_num(r.get(col)) for r in plot.rows], width=width, label=col)
        ax.set_xticks(range(len(cats)), cats)
        ax.grid(axis="y", alpha=0.3)
        if plot.y:
            ax.legend()
    elif plot.kind == "matrix":
        import numpy as np

        m = np.asarray(plot.matrix, dtype=float)
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(m.shape[1]), plot.col_labels or [str(i) for i in range(m.shape[1])])
        ax.set_yticks(range(m.shape[0]), plot.row_labels or [str(i) for i in range(m.shape[0])])
        top = m.max() if m.size else 0
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:g}", ha="center", va="center", color="white" if v > top / 2 else "black")
    else:
        raise ValueError(f"unknown plot kind {plot.kind!r}")
    ax.set_title(plot.title)
    ax.set_xlabel(plot.xlabel or (plot.x if plot.kind != "matrix" else ""))
    ax.set_ylabel(plot.ylabel)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
