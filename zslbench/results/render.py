"""Rendering a :class:`~zslbench.results.tables.Table`: LaTeX (booktabs), Markdown and CSV.

* ``latex`` — booktabs, best **bold** and second underlined per column (measured rows only),
  ± std in ``\\scriptsize``, † on test-selected numbers, footnotes under the tabular. The tabular is
  shrunk to the text width when it is wider (``\\resizebox``, never enlarged), so any table fits a
  standard article page. It needs ``\\usepackage{booktabs,graphicx}`` and compiles unchanged with pdflatex.
* ``markdown`` — a GitHub table, best ``**bold**``, second ``<u>underlined</u>``, footnotes below.
* ``csv`` — one line per (block, row, dataset, metric) with mean, std, n, rank, Δ and the policy.

Example::

    >>> from zslbench.results.tables import Cell
    >>> format_number(Cell(0.7512, 0.0041, 3), "markdown")
    '75.1 ± 0.4'
"""

from __future__ import annotations

import csv
import io

from zslbench.core.errors import unknown_name
from zslbench.results.tables import METRIC_HEADERS, Cell, Table

FORMATS = ("latex", "markdown", "csv")


def render(table: Table, fmt: str) -> str:
    """The table as ``latex``, ``markdown`` or ``csv`` text (ends with a newline)."""
    if fmt == "latex":
        return render_latex(table)
    if fmt == "markdown":
        return render_markdown(table)
    if fmt == "csv":
        return render_csv(table)
    raise unknown_name("format", fmt, FORMATS)


def percent(value: float) -> str:
    """A fraction as a one-decimal percentage (``-0.0`` shown as ``0.0``).

    >>> percent(0.7512), percent(-0.00001)
    ('75.1', '0.0')
    """
    text = f"{100 * value:.1f}"
    return "0.0" if text == "-0.0" else text


def signed_percent(value: float) -> str:
    """A difference of fractions in signed percentage points: ``+1.2``, ``-0.4``, ``0.0``."""
    text = percent(value)
    return text if text.startswith("-") or text == "0.0" else f"+{text}"


def format_number(cell: Cell, fmt: str) -> str:
    """One cell's text in ``latex`` or ``markdown`` (rank, ± std, †, Δ)."""
    number = percent(cell.mean) if cell.mean is not None else "–"
    if cell.mean is None:
        return "--" if fmt == "latex" else "–"
    show_std = cell.std is not None and cell.n > 1
    if fmt == "latex":
        text = {1: f"\\textbf{{{number}}}", 2: f"\\underline{{{number}}}"}.get(cell.rank or 0, number)
        if cell.oracle:
            text += "$^\\dagger$"
        if show_std:
            text += f"{{\\scriptsize$\\pm${percent(cell.std)}}}"
        if cell.delta is not None:
            text += f"{{\\scriptsize\\,({signed_percent(cell.delta).replace('-', '$-$')})}}"
        return text
    text = {1: f"**{number}**", 2: f"<u>{number}</u>"}.get(cell.rank or 0, number)
    if cell.oracle:
        text += "†"
    if show_std:
        text += f" ± {percent(cell.std)}"
    if cell.delta is not None:
        text += f" ({signed_percent(cell.delta)})"
    return text


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"γ": r"$\gamma$", "σ": r"$\sigma$", "λ": r"$\lambda$", "Δ": r"$\Delta$", "±": r"$\pm$",
                  "†": r"$^\dagger$", "‡": r"$^\ddagger$", "−": r"$-$", "–": "--", "—": "---", "→": r"$\to$", "≥": r"$\geq$",
                  "≤": r"$\leq$", "×": r"$\times$", "…": r"\ldots{}", "·": r"$\cdot$", "é": r"\'e", "ᵀ": r"$^\top$",
                  "∈": r"$\in$", "²": r"$^2$", "‖": r"$\|$", "§": r"\S{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols tables use to math (pdflatex-safe).

    >>> latex_escape("w/o SSPS [γ oracle], 100% & model.keep_12")
    'w/o SSPS [$\\\\gamma$ oracle], 100\\\\% \\\\& model.keep\\\\_12'
    """
    out = []
    for char in text:
        if char in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[char])
        elif char in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[char])
        elif ord(char) > 127:
            out.append("?")  # pdflatex without extra packages cannot typeset it
        else:
            out.append(char)
    return "".join(out)


def render_latex(table: Table) -> str:
    """A ``table`` float with a booktabs tabular (shrunk to ``\\linewidth`` when wider) and footnotes; needs
    ``booktabs`` and ``graphicx``."""
    columns = table.columns()
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(table.caption)}}}"]
    if table.label:
        lines.append(f"\\label{{{table.label}}}")
    lines += ["\\small", "\\setlength{\\tabcolsep}{4pt}",
              "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
              "\\begin{tabular}{l" + "".join("|" * 0 + "c" * len(cols) for _, cols in table.groups) + "}",
              "\\toprule"]
    header, rules, start = [""], [], 2
    for group, cols in table.groups:
        header.append(f"\\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(group)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
        start += len(cols)
    lines.append(" & ".join(header) + " \\\\")
    lines.append(" ".join(rules))
    lines.append(" & ".join([latex_escape(table.stub)] + [METRIC_HEADERS.get(c, latex_escape(c)) for _, c in columns])
                 + " \\\\")
    lines.append("\\midrule")
    for index, block in enumerate(table.blocks):
        if index:
            lines.append("\\midrule")
        if block.title:
            lines.append(f"\\multicolumn{{{len(columns) + 1}}}{{l}}{{\\textit{{{latex_escape(block.title)}}}}} \\\\")
        for row in block.rows:
            cells = [format_number(row.cells.get(c, Cell(None)), "latex") for c in columns]
            lines.append(" & ".join([latex_escape(row.label)] + cells) + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}}")
    if table.notes:
        lines.append("\\par\\smallskip")
        lines.append("\\parbox{\\linewidth}{\\footnotesize")
        lines.append(" \\\\\n".join(latex_escape(note) for note in table.notes))
        lines.append("}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table (headers "<dataset> <metric>"), footnotes below."""
    columns = table.columns()
    header = [table.stub] + [f"{group} {METRIC_HEADERS.get(c, c)}" for group, c in columns]
    lines = [f"**{_markdown_escape(table.caption)}**", "", "| " + " | ".join(map(_markdown_escape, header)) + " |",
             "|" + "---|" + "---:|" * len(columns)]
    for block in table.blocks:
        if block.title:
            lines.append(f"| *{_markdown_escape(block.title)}* |" + " |" * len(columns))
        for row in block.rows:
            cells = [format_number(row.cells.get(c, Cell(None)), "markdown") for c in columns]
            lines.append("| " + " | ".join([_markdown_escape(row.label)] + cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("block", "row", "dataset", "metric", "mean", "std", "n", "rank", "delta", "test_selected", "policy",
               "run_ids")


def render_csv(table: Table) -> str:
    """Tidy CSV: one line per number (percentages with one decimal; empty = not available)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for block in table.blocks:
        name = "reported" if not block.ranked else "measured"
        for row in block.rows:
            for group, metric in table.columns():
                cell = row.cells.get((group, metric))
                if cell is None or cell.mean is None:
                    continue
                writer.writerow([name, row.label, group, METRIC_HEADERS.get(metric, metric), percent(cell.mean),
                                 percent(cell.std) if cell.std is not None and cell.n > 1 else "",
                                 cell.n or "", cell.rank or "", signed_percent(cell.delta) if cell.delta is not None else "",
                                 "true" if cell.oracle or not block.ranked else "false", row.policy,
                                 " ".join(row.run_ids)])
    return buffer.getvalue()




__all__ = ["FORMATS", "format_number", "latex_escape", "percent", "render", "render_csv", "render_latex",
           "render_markdown", "signed_percent"]
