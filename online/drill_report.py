"""The drill's report: each step with its command, output, timing and pass/fail.

Written twice from the same records: Markdown, and one self-contained HTML page (inline
CSS, no script, no external resource) that prints as the rehearsal record.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a scenario as it ran. Outputs are already redacted (no passphrase)."""

    number: int
    actor: str
    title: str
    command: str
    expected: str
    output: str
    seconds: float
    passed: bool
    problem: str = ""


@dataclass(frozen=True, slots=True)
class ScenarioRecord:
    name: str
    summary: str
    expected: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    seconds: float
    error: str = ""  # why the scenario stopped early, if it did

    @property
    def passed(self) -> bool:
        return not self.error and all(s.passed for s in self.steps)


@dataclass(frozen=True, slots=True)
class DrillRecord:
    started: str  # UTC, ISO 8601
    server: str
    tools: str
    scenarios: tuple[ScenarioRecord, ...]
    seconds: float

    @property
    def checks(self) -> tuple[int, int]:
        """(passed, total): every step is a check, and a scenario stopped early fails one more."""
        steps = [s for sc in self.scenarios for s in sc.steps]
        stopped = sum(1 for sc in self.scenarios if sc.error)
        return sum(1 for s in steps if s.passed), len(steps) + stopped

    @property
    def passed(self) -> bool:
        return all(sc.passed for sc in self.scenarios)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}text\n{text.rstrip()}\n{ticks}"


def markdown(drill: DrillRecord) -> str:
    passed, total = drill.checks
    lines = [
        f"# Ceremony drill: {_verdict(drill.passed)}",
        "",
        f"- started: {drill.started}",
        f"- server: {drill.server}",
        f"- tools: {drill.tools}",
        f"- checks passed: {passed} of {total}; {drill.seconds:.1f} s in all",
        "- passphrases were given to each machine in environment variables set by the drill; "
        "they appear nowhere in this report.",
        "",
        "| scenario | result | steps | seconds |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {sc.name} | {_verdict(sc.passed)} | {len(sc.steps)} | {sc.seconds:.1f} |"
        for sc in drill.scenarios
    ]
    for sc in drill.scenarios:
        lines += ["", f"## Scenario `{sc.name}`: {_verdict(sc.passed)}", "", sc.summary, ""]
        lines += ["Expected:", ""] + [f"- {e}" for e in sc.expected] + [""]
        if sc.error:
            lines += [f"**Stopped early:** {sc.error}", ""]
        lines += ["| # | who | step | result | seconds |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {s.number} | {s.actor} | {s.title} | {_verdict(s.passed)} | {s.seconds:.2f} |"
            for s in sc.steps
        ]
        for s in sc.steps:
            lines += [
                "",
                f"### {sc.name} {s.number}. {s.title}: {_verdict(s.passed)}",
                "",
                f"- who: {s.actor}",
                f"- expected: {s.expected}",
                f"- time: {s.seconds:.2f} s",
            ]
            if s.problem:
                lines.append(f"- **problem:** {s.problem}")
            lines += ["", _fence("$ " + s.command), "", _fence(s.output or "(no output)")]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#111}
h1,h2,h3{line-height:1.2} h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #999;padding:.2em .5em;
text-align:left;vertical-align:top}
pre{background:#f4f4f4;border:1px solid #ccc;padding:.5em;white-space:pre-wrap;
word-break:break-all;font-size:.8em}
.PASS{color:#060;font-weight:bold} .FAIL{color:#b00;font-weight:bold}
.step{page-break-inside:avoid} .scenario{page-break-before:always}
@media print{body{margin:0;max-width:none} pre{font-size:7pt}}
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _badge(ok: bool) -> str:
    word = _verdict(ok)
    return f'<span class="{word}">{word}</span>'


def html_page(drill: DrillRecord) -> str:
    passed, total = drill.checks
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Ceremony drill: {_verdict(drill.passed)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Ceremony drill: {_badge(drill.passed)}</h1>",
        "<ul>",
        f"<li>started: {_esc(drill.started)}</li>",
        f"<li>server: {_esc(drill.server)}</li>",
        f"<li>tools: {_esc(drill.tools)}</li>",
        f"<li>checks passed: {passed} of {total}; {drill.seconds:.1f} s in all</li>",
        "<li>passphrases were given to each machine in environment variables set by the drill; "
        "they appear nowhere in this report.</li>",
        "</ul>",
        "<table><tr><th>scenario</th><th>result</th><th>steps</th><th>seconds</th></tr>",
    ]
    parts += [
        f"<tr><td>{_esc(sc.name)}</td><td>{_badge(sc.passed)}</td><td>{len(sc.steps)}</td>"
        f"<td>{sc.seconds:.1f}</td></tr>"
        for sc in drill.scenarios
    ]
    parts.append("</table>")
    for sc in drill.scenarios:
        parts += [
            '<section class="scenario">',
            f"<h2>Scenario <code>{_esc(sc.name)}</code>: {_badge(sc.passed)}</h2>",
            f"<p>{_esc(sc.summary)}</p><p>Expected:</p><ul>",
            *(f"<li>{_esc(e)}</li>" for e in sc.expected),
            "</ul>",
        ]
        if sc.error:
            parts.append(f"<p><strong>Stopped early:</strong> {_esc(sc.error)}</p>")
        parts.append(
            "<table><tr><th>#</th><th>who</th><th>step</th><th>result</th><th>seconds</th></tr>"
        )
        parts += [
            f"<tr><td>{s.number}</td><td>{_esc(s.actor)}</td><td>{_esc(s.title)}</td>"
            f"<td>{_badge(s.passed)}</td><td>{s.seconds:.2f}</td></tr>"
            for s in sc.steps
        ]
        parts.append("</table>")
        for s in sc.steps:
            problem = f"<br><strong>problem:</strong> {_esc(s.problem)}" if s.problem else ""
            parts += [
                '<div class="step">',
                f"<h3>{_esc(sc.name)} {s.number}. {_esc(s.title)}: {_badge(s.passed)}</h3>",
                f"<p>who: {_esc(s.actor)}<br>expected: {_esc(s.expected)}<br>"
                f"time: {s.seconds:.2f} s{problem}</p>",
                f"<pre>$ {_esc(s.command)}</pre>",
                f"<pre>{_esc(s.output.rstrip() or '(no output)')}</pre>",
                "</div>",
            ]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
