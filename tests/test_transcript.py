"""The ceremony transcript, through the real `ceremony` console script.

Every command (usage errors and refused inputs too) appends one hash-chained line;
`transcript verify` names an edited or removed line, and `--expect-head` catches lines
cut off the end. A transcript that cannot be written is reported after the command's
own result (exit 3), never instead of it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from ceremony.offline import transcript
from ceremony.offline.transcript import head_words, line_hash, verify_chain

CEREMONY = Path(sys.executable).parent / "ceremony"
HEAD = re.compile(r"^transcript: line (\d+), head ((?:\S+ ){7}\S+)$", re.MULTILINE)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "CEREMONY_"))}


def run(
    home: Path, *args: str, code: int | None = 0, fsize: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a full disk, for the transcript file only
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.run(
        [str(CEREMONY), "--home", str(home), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env(),
        timeout=120,
        preexec_fn=limit if fsize is not None else None,  # only sets RLIMIT_FSIZE
    )
    if code is not None:
        assert proc.returncode == code, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def lines(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "transcript.jsonl").read_text().splitlines()]


def write_lines(home: Path, entries: list[dict[str, object]]) -> None:
    (home / "transcript.jsonl").write_text(
        "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries)
    )


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def three_lines(home: Path) -> list[str]:
    """Three commands: one that works, a usage error, a refused request. Their head words."""
    heads = []
    bad_request = home.parent / "bad-request.json"
    bad_request.write_text('{"media_type": "not a request"}')
    for args, code in (
        (("trust", "list"), 0),
        (("review",), 2),
        (("review", str(bad_request)), 1),
    ):
        proc = run(home, *args, code=code)
        heads.append(HEAD.findall(proc.stderr)[-1][1])
    return heads


def test_every_command_appends_one_chained_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    heads = three_lines(home)
    entries = lines(home)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [e["exit"] for e in entries] == [0, 2, 1]
    assert entries[0]["argv"] == ["--home", str(home), "trust", "list"]
    assert entries[0]["error"] is None and entries[0]["prev"] is None
    assert "Give a request file" in str(entries[1]["error"])
    assert "request" in str(entries[2]["error"]).lower()  # the refused input's sentence
    assert str(entries[0]["tool"]).startswith("notary-ceremony ")
    for before, entry in zip([None, *entries], entries, strict=False):
        assert entry["hash"] == line_hash(entry)
        assert entry["prev"] == (before["hash"] if before else None)
        datetime.strptime(str(entry["time"]), "%Y-%m-%dT%H:%M:%SZ")
    # The words printed after each command are the head the file holds at that moment.
    assert heads == [head_words(str(e["hash"])) for e in entries]
    assert (home / "transcript.jsonl").stat().st_mode & 0o777 == 0o600
    assert (home / ".transcript.lock").exists()

    verified = run(home, "transcript", "verify", "--expect-head", heads[-1])
    assert "3 line(s) form an intact chain" in verified.stdout
    assert "is line 3, the newest line" in verified.stdout
    shown = run(home, "transcript", "show")
    assert (
        "exit 2  ceremony --home" in shown.stdout and "error: Give a request file" in shown.stdout
    )


def test_help_alone_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "--help")
    run(home, "review", "--help")
    assert not (home / "transcript.jsonl").exists()


def test_usage_errors_are_recorded_with_their_sentence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "no-such-command", code=2)
    run(home, "key", code=2)  # a group without its subcommand
    entries = lines(home)
    assert entries[0]["error"] == "No such command 'no-such-command'."
    assert entries[1]["error"] == "no subcommand was given; the help was shown."


def test_a_secret_typed_on_the_command_line_is_not_recorded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "key", "generate", "root", "--gun", "example.com/a", "--pkcs11-pin", "93517", code=2)
    run(home, "review", "--passphrase=hunter22-secret", code=2)
    text = (home / "transcript.jsonl").read_text()
    assert "93517" not in text and "hunter22" not in text
    first, second = lines(home)
    assert first["argv"][-2:] == ["--pkcs11-pin", "<redacted>"]  # type: ignore[index]
    assert second["argv"][-1] == "--passphrase=<redacted>"  # type: ignore[index]


def test_an_edited_line_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    three_lines(home)
    entries = lines(home)
    entries[1]["exit"] = 0  # make the usage error look like a success
    write_lines(home, entries)
    proc = run(home, "transcript", "verify", code=1)
    assert errors(proc) == [
        "error: Line 2 of the transcript was changed after it was written: its content does "
        "not match its hash."
    ]
    run(home, "transcript", "show", code=1)
    run(home, "transcript", "export", "--out", str(tmp_path / "copy.jsonl"), code=1)
    assert not (tmp_path / "copy.jsonl").exists()


def test_an_edited_line_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    three_lines(home)
    entries = lines(home)
    entries[1]["error"] = None
    entries[1]["hash"] = line_hash(entries[1])  # the forger knows the recipe
    write_lines(home, entries)
    proc = run(home, "transcript", "verify", code=1)
    assert errors(proc)[0].startswith("error: Line 3 of the transcript does not follow line 2")


def test_a_removed_line_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    three_lines(home)
    entries = lines(home)
    write_lines(home, [entries[0], entries[2]])
    proc = run(home, "transcript", "verify", code=1)
    assert errors(proc)[0].startswith("error: Line 2 of the transcript does not follow line 1")
    # The first line removed:
    write_lines(home, entries[1:])
    proc = run(home, "transcript", "verify", code=1)
    assert errors(proc)[0].startswith("error: Line 1 of the transcript is not the first entry")


def test_a_cut_tail_is_caught_by_the_head_on_the_paper_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    heads = three_lines(home)
    paper = heads[-1]  # what the witnesses wrote after the third command
    write_lines(home, lines(home)[:2])  # the last line cut off
    # The chain alone cannot see it (and this verify appends a line to the shortened chain)...
    run(home, "transcript", "verify")
    # ...the paper record can.
    proc = run(home, "transcript", "verify", "--expect-head", paper, code=1)
    assert errors(proc) == [
        "error: No line of this transcript has the head written on the paper record: lines "
        "were cut off its end, or it is another machine's transcript."
    ]
    # A head from earlier on the record is still found, with what came after it.
    proc = run(home, "transcript", "verify", "--expect-head", heads[0].upper())
    assert "is line 1; 3 line(s) were written after it" in proc.stdout
    proc = run(home, "transcript", "verify", "--expect-head", "too few words", code=2)


def test_export_copies_the_verified_transcript(tmp_path: Path) -> None:
    home = tmp_path / "home"
    three_lines(home)
    before = (home / "transcript.jsonl").read_bytes()
    proc = run(home, "transcript", "export", "--out", str(tmp_path / "copy.jsonl"))
    assert (tmp_path / "copy.jsonl").read_bytes() == before
    assert "Exported 3 line(s)" in proc.stdout
    assert len(verify_chain((tmp_path / "copy.jsonl").read_bytes()).entries) == 3


def test_a_transcript_that_cannot_be_written_does_not_hide_the_result(tmp_path: Path) -> None:
    home = tmp_path / "home"
    three_lines(home)
    size = (home / "transcript.jsonl").stat().st_size
    ok = run(home, "trust", "list", code=3, fsize=size)  # no room for one more byte
    assert "No repository is trusted" in ok.stdout  # the command's own output stands
    (sentence,) = errors(ok)
    assert "transcript.jsonl could not be written (File too large)" in sentence
    assert "this command itself succeeded (exit 0), but it is NOT on the record" in sentence

    failed = run(home, "review", str(tmp_path / "missing.json"), code=3, fsize=size)
    first, second = errors(failed)
    assert first.startswith("error: The request") and "does not exist" in first
    assert "this command itself failed (exit 2) as reported above" in second
    # Nothing half-written is left behind: the chain still verifies, and goes on.
    assert (home / "transcript.jsonl").stat().st_size == size
    run(home, "transcript", "verify")
    assert len(lines(home)) == 4


def test_concurrent_commands_keep_one_chain(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "trust", "list")
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: run(home, "trust", "list"), range(6)))
    assert len(verify_chain((home / "transcript.jsonl").read_bytes()).entries) == 7


def test_a_torn_last_line_is_named_and_chained_past(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "trust", "list")
    with (home / "transcript.jsonl").open("ab") as handle:
        handle.write(b'{"seq":2,"ti')  # a crash in the middle of a write
    run(home, "trust", "list")
    proc = run(home, "transcript", "verify", code=1)
    assert errors(proc)[0].startswith("error: Line 2 of the transcript is not a transcript entry")


def test_library_append_records_notes_and_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    when = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    with transcript.collecting() as notes:
        transcript.note(request_id="r" * 64, digest="d" * 64, keys=["k1", "k2", "k1"])
        appended = transcript.append(
            home, argv=["sign", "x"], exit_code=0, error=None, notes=notes, tool="t", now=when
        )
    (entry,) = verify_chain((home / "transcript.jsonl").read_bytes()).entries
    assert entry.hash == appended.hash and entry.time == "2031-02-03T04:05:06Z"
    assert entry.request_id == "r" * 64 and entry.digest == "d" * 64
    assert entry.keys == ("k1", "k2")
    transcript.note(request_id="ignored")  # outside a command: nothing happens


def test_left_out_words_are_hidden_as_whole_words_only() -> None:
    from ceremony.cli._record import scrub

    hidden = ["expect", "acid", "academic"]
    sentence = "Got unexpected extra argument(s) (expect acid academic)"
    assert scrub(sentence, hidden) == (
        "Got unexpected extra argument(s) (<redacted> <redacted> <redacted>)"
    )
