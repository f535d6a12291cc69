"""Compare handout: the dialogue, the prompt, each slot's summary and scores as Markdown and CSV.

:func:`check_results` accepts only the shape ``/compare`` returns (:mod:`ui.compare.results_json`: every
text cleaned and capped, every number finite, labels the slots' own), so a hand-made JSON cannot
smuggle anything into the files:

* Markdown: the dialogue and prompt go in code fences longer than any run of backticks in them
  (nothing inside a fence is rendered); other text is HTML-escaped and its Markdown punctuation
  backslash-escaped, so ``<script>`` or ``[link](…)`` show as typed.
* CSV: a text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a
  leading ``'`` so spreadsheets do not run it as a formula (OWASP "CSV injection"); numbers are
  written by us and left as numbers.
"""
from __future__ import annotations

import csv
import html
import io
import re
import tempfile
from pathlib import Path

from summarizer.text import spreadsheet_safe

from ui.compare.results_json import WHAT_TO_DO, read_results

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def check_results(results) -> dict:
    """A cleaned copy of a ``/compare`` JSON, object or JSON text (:func:`ui.compare.results_json.read_results`,
    the check the Toxicity tab uses too).

    Raises:
        ValueError: no results yet ("nothing to export yet"), or a malformed JSON; the message
            starts "Compare results" and names the field.
    """
    checked = read_results(results)
    if checked is None:
        raise ValueError(f"Compare results: nothing to export yet. Run Compare first, or {WHAT_TO_DO}.")
    return checked


def md_inline(text: str) -> str:
    """``text`` safe inside a Markdown paragraph or table cell: HTML-escaped, punctuation escaped,
    one line."""
    escaped = html.escape(" ".join(text.split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def md_block(text: str) -> str:
    """``text`` verbatim in a fenced code block whose fence no backtick run inside can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _fmt(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "" if value is None else f"{scale * value:.{digits}f}"


def to_markdown(results: dict) -> str:
    """The handout as Markdown (``results`` from :func:`check_results`)."""
    lines = ["# Compare handout: one dialogue, four models", "", "## Dialogue", "",
             md_block(results["dialogue"] or "(not given)"), "",
             "## Prompt (zero-shot, greedy decoding; every model read this)", "",
             md_block(results["prompt"] or "(not given)"), ""]
    if results["prompt_notes"]:
        lines += ["Prompt notes:", "", *[f"- {md_inline(n)}" for n in results["prompt_notes"]], ""]
    if results["references"]:
        lines += ["## Human reference summaries", "",
                  *[f"{k + 1}. {md_inline(r)}" for k, r in enumerate(results["references"])], ""]
    lines += ["## Summaries", "",
              "Reward: the hate-speech classifier's `nothate` logit (higher = less hateful). "
              "ROUGE: best F-measure ×100 over the references.", "",
              "| Model | Summary | Reward | P(hate) | ROUGE-1 | ROUGE-L |", "|---|---|---|---|---|---|"]
    for row in results["slots"]:
        summary = md_inline(row["summary"]) if row["filled"] else f"*empty slot:* {md_inline(row['summary'])}"
        lines.append(f"| {md_inline(row['label'])} | {summary} | {_fmt(row['reward'], 2)} | {_fmt(row['p_hate'], 3)} "
                     f"| {_fmt(row['rouge1'], 1, 100)} | {_fmt(row['rougeL'], 1, 100)} |")
    return "\n".join(lines) + "\n"


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate: a leading ``'`` before = + - @ tab CR."""
    return spreadsheet_safe(text)


CSV_COLUMNS = ("part", "model", "text", "reward", "p_hate", "rouge1_x100", "rougeL_x100")


def to_csv(results: dict) -> str:
    """The handout as CSV: one row for the dialogue, the prompt, each reference and each slot."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["dialogue", "", csv_cell(results["dialogue"]), "", "", "", ""])
    writer.writerow(["prompt", "", csv_cell(results["prompt"]), "", "", "", ""])
    for k, ref in enumerate(results["references"]):
        writer.writerow([f"reference {k + 1}", "", csv_cell(ref), "", "", "", ""])
    for row in results["slots"]:
        writer.writerow(["summary", row["label"], csv_cell(row["summary"]), _fmt(row["reward"], 4),
                         _fmt(row["p_hate"], 4), _fmt(row["rouge1"], 2, 100), _fmt(row["rougeL"], 2, 100)])
    return out.getvalue()


def write_handout(results, folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``compare-handout.md`` and ``compare-handout.csv`` to a new temporary folder.

    Raises:
        ValueError: ``results`` is not a ``/compare`` JSON (see :func:`check_results`).
    """
    checked = check_results(results)
    folder = Path(folder or tempfile.mkdtemp(prefix="studio-compare-"))
    md, table = folder / "compare-handout.md", folder / "compare-handout.csv"
    md.write_text(to_markdown(checked), encoding="utf-8")
    table.write_text(to_csv(checked), encoding="utf-8", newline="")
    return md, table
