"""Names from untrusted metadata cannot disguise themselves on the operator's screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ceremony.core.changes import AddTarget, InitRepository, SetExpiry
from ceremony.core.documents import Request
from ceremony.core.errors import MalformedInput, printable
from ceremony.core.gotime import GoTime
from ceremony.core.metadata import FileMeta
from ceremony.core.plan import plan
from ceremony.offline.review import review_request
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GUN = "example.com/display/app"
EVIL = "app\r\x1b[2K+ target harmless\u202efdp.exe\u2028"


def test_printable_escapes_control_format_and_bidi_characters() -> None:
    shown = printable(EVIL + "\\ é 日本 \U0001f600")
    assert (
        shown == "app\\u000d\\u001b[2K+ target harmless\\u202efdp.exe\\u2028\\\\ é 日本 \U0001f600"
    )
    assert shown.isprintable()


DISGUISED = "app\u202efdp.exe\u2028\u200b"  # publishable, yet not what it seems


def test_review_shows_hostile_target_names_escaped() -> None:
    root = make_root_certificate(PrivateKey.generate_ecdsa(), GUN, NOW)
    targets = PrivateKey.generate_ecdsa().public_key()
    changes = [
        InitRepository((root,), 1, (targets,), 1, targets, targets),
        AddTarget("targets", DISGUISED, FileMeta.for_bytes(b"x")),
        SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3650))),
        SetExpiry("targets", GoTime.from_datetime(NOW + timedelta(days=1000))),
    ]
    request = Request.build(
        gun=GUN,
        created=GoTime.from_datetime(NOW),
        nonce="cd" * 16,
        base=[],
        changes=changes,
        plan=plan({}, changes),
    )
    result = review_request(Request.from_bytes(request.to_bytes()), None, lambda _d: None, NOW)
    lines = [line.render() for d in result.diffs for line in d.detail()]
    assert any("app\\u202efdp.exe\\u2028\\u200b" in line for line in lines)
    assert any(
        line.startswith("! ") and "contains invisible or look-alike characters" in line
        for line in lines
    )
    assert all(line.isprintable() for line in lines)


def test_error_messages_are_one_printable_line() -> None:
    error = MalformedInput(f"The target {EVIL} is bad.")
    assert error.message.isprintable() and "\n" not in error.message


def test_tables_show_markup_literally() -> None:
    from rich.console import Console

    from ceremony.cli.review_cmds import plain_table

    console = Console(width=200, record=True, color_system=None)
    console.print(plain_table(("role", "target"), [("targets", "[white on white]hidden[/]")]))
    assert "[white on white]hidden[/]" in console.export_text()
