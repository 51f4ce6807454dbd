"""Rewrite the `--help` overview tables from the full apps (run after adding a command).

    .venv/bin/python scripts/update_overview.py

tests/test_cold_start.py fails, naming this script, when a table no longer matches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.main import get_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BEGIN, END = "    commands=(  # overview: begin\n", "    ),  # overview: end\n"


def summaries(app: typer.Typer) -> list[tuple[str, str]]:
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return [
        (name, " ".join((command.help or "").split("\n\n")[0].split()))
        for name, command in group.commands.items()
    ]


def rewrite(path: Path, entries: list[tuple[str, str]]) -> None:
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    body = "".join(f"        ({name!r}, {summary!r}),\n" for name, summary in entries)
    path.write_text(text[:start] + body + text[end:])


def main() -> None:
    from ceremony.cli import _register
    from ceremony.cli import app as offline_app

    _register()
    import online.cli  # noqa: F401 - registers every online command
    from online.cli_root import app as online_app

    rewrite(ROOT / "ceremony" / "cli" / "__init__.py", summaries(offline_app))
    rewrite(ROOT / "online" / "cli_root.py", summaries(online_app))
    print("Overview tables rewritten; run `ruff format ceremony online`.")


if __name__ == "__main__":
    main()
