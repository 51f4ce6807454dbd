"""`ceremony review` / `ceremony sign` of a batch request: many repositories, one sitting.

The summary is one row per repository (roles, versions old -> new, expiry old -> new, `!`
on a row that changes who can sign), then every `!` line, each naming its repository;
the detail goes to a pager at a terminal, or is printed with `--full`. One confirmation
and one set of words cover the batch; a fingerprint is confirmed once; each distinct key
is opened once (one passphrase, one PIN per token).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ceremony.cli._prompts import ask_acknowledgements, confirm, get_passphrase, interactive
from ceremony.cli.review_cmds import _detail, _detail_count, _review, err, out
from ceremony.core.batch import BatchRequest
from ceremony.core.errors import InputRejected, printable
from ceremony.core.gotime import GoTime, utc_now
from ceremony.core.metadata import Key
from ceremony.edge.clikit import write_lines
from ceremony.edge.fsutil import atomic_write
from ceremony.offline.batchreview import (
    BatchReview,
    check_batch_acknowledgements,
    missing_needs,
    review_batch,
    sign_batch,
)
from ceremony.offline.review import (
    Acknowledgements,
    ReviewResult,
    record_signing,
)
from ceremony.offline.trust import TrustStore
from ceremony.qr.transfer import digest_phrase
from ceremony.signing.pkcs11uri import token_of_pin_alias
from ceremony.signing.signer import Backend, KeySigner, Signer, open_backend


def _say(text: str) -> None:
    out.print(text, markup=False)


def _row(result: ReviewResult) -> tuple[str, str, str, str, str]:
    roles, versions, expiry = [], [], []
    for d in result.diffs:
        roles.append(d.role)
        old = f"v{d.old_version}" if d.old_version is not None else "new"
        versions.append(f"{old}->v{d.new_version}")
        before = d.old_expires[:10] if d.old_expires else "-"
        expiry.append(f"{before}->{d.new_expires[:10]}")
    bang = "!" if result.bang_lines else " "
    return (
        bang,
        printable(result.request.gun),
        " ".join(roles),
        " ".join(versions),
        " ".join(expiry),
    )


def _detail_all(review: BatchReview) -> Iterator[str]:
    for gun, result in review.results.items():
        yield ""
        yield f"=== {printable(gun)} (request {result.request.id})"
        yield from _detail(result)


def show_batch(review: BatchReview, now: datetime, *, full: bool) -> None:
    """Summary table, every `!` line, what must be acknowledged, failures, then the detail."""
    batch = review.batch
    _say(f"Batch request {batch.id}: {len(batch.requests)} repositories")
    _say(f"  digest: {batch.digest}")
    _say(f"  words:  {digest_phrase(batch.digest)}")
    _say(f"  offline clock (warnings only): {now.replace(microsecond=0).isoformat()}")
    _say("")
    rows = [_row(r) for r in review.results.values()]
    header = ("", "repository", "roles", "versions", "expiry")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        _say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    bangs = [(g, line) for g, r in review.results.items() for line in r.bang_lines]
    _say("")
    if bangs:
        _say(f"Changes to who can sign ({len(bangs)}):")
        for gun, line in bangs:
            _say(f"! {printable(gun)}: {line}")
    else:
        _say("No change to who can sign in any repository.")
    for gun, result in review.results.items():
        for violation in result.policy_violations:
            _say(
                f"! POLICY {printable(gun)}: this machine's signing policy refuses it: {violation}"
            )
    if review.failures:
        _say("")
        _say(f"Repositories that FAIL the checks ({len(review.failures)}):")
        for gun, why in review.failures.items():
            skipped = " (skipped with --skip)" if gun in review.skipped else ""
            _say(f"  x {printable(gun)}{skipped}: {why}")
    needs = missing_needs(review, Acknowledgements())
    if needs:
        _say("To sign it, acknowledge by name (once for the batch):")
        for need, guns in needs:
            _say(f"  {need.flag}    {need.why} ({len(guns)} repositories)")
    if full:
        write_lines(_detail_all(review))
    elif out.is_terminal:
        import pydoc

        pydoc.pager("\n".join(["Detail of every change:", *_detail_all(review)]))
    else:
        count = sum(_detail_count(r) + 2 for r in review.results.values())
        _say("")
        _say(f"(The detail, {count} lines, is printed with --full.)")
    for gun, result in review.results.items():
        for w in result.warnings:
            err.print(f"warning: {printable(gun)}: {w}", markup=False)


def _review_all(
    home: Path, store: TrustStore, batch: BatchRequest, now: datetime, skip: list[str], again: bool
) -> BatchReview:
    return review_batch(
        batch,
        lambda _gun, index: _review(home, store, batch.requests[index], now),
        skip,
        again=again,
    )


def review(home: Path, batch: BatchRequest, *, full: bool) -> None:
    """Read-only: every repository verified and shown; nothing written."""
    now = utc_now()
    result = _review_all(home, TrustStore(home), batch, now, [], False)
    show_batch(result, now, full=full)
    refusal = result.refusal()
    if refusal is not None:
        raise refusal


def _ask(review: BatchReview, given: Acknowledgements) -> Acknowledgements:
    """Prompt once per distinct acknowledgement still missing; without a terminal, refuse."""
    needs = missing_needs(review, given)
    if not needs:
        return given
    if not interactive():
        raise InputRejected(
            "This batch must be acknowledged by name before it is signed: "
            + "; ".join(f"{n.flag} ({n.why}; {len(g)} repositories)" for n, g in needs)
            + ". Compare with your record, then re-run with those options."
        )
    typed = ask_acknowledgements(
        given, ((need, f" ({len(guns)} repositories)") for need, guns in needs)
    )
    check_batch_acknowledgements(review, typed)
    still = missing_needs(review, typed)
    if still:
        raise InputRejected(
            "What was typed does not acknowledge "
            + "; ".join(n.why for n, _ in still)
            + ": nothing was signed."
        )
    return typed


def sign(
    home: Path,
    batch: BatchRequest,
    *,
    out_file: Path | None,
    qr_out: Path | None,
    yes: bool,
    given: Acknowledgements,
    skip: list[str],
    again: bool,
    full: bool,
) -> None:
    """Review every repository, acknowledge once, confirm once, sign all, record all, write one
    signatures document."""
    from ceremony.signing.keystore import KeyStore

    now = utc_now()
    store = TrustStore(home)
    keystore = KeyStore(home)
    waiting = functools.partial(
        err.print, "Waiting for another ceremony command that is using this home…", markup=False
    )
    with store.locked(on_wait=waiting):
        review_ = _review_all(home, store, batch, now, skip, again)
        show_batch(review_, now, full=full)
        refusal = review_.refusal()
        if refusal is not None:
            raise refusal
        check_batch_acknowledgements(review_, given)
        given = _ask(review_, given)
        count = len(review_.to_sign)
        skipped = f", skipping {len(review_.skipped)}" if review_.skipped else ""
        confirm(f"Sign {count} repositories of batch {batch.id}{skipped}?", assume_yes=yes)

        pins: dict[str, str] = {}

        def passphrase_for(alias: str) -> str:
            """A PIN once per token; a key file's passphrase once per key (its backend is kept)."""
            if token_of_pin_alias(alias) is None:
                return get_passphrase(alias, new=False)
            if alias not in pins:
                pins[alias] = get_passphrase(alias, new=False)
            return pins[alias]

        backends: dict[str, Backend] = {}

        def signer_for(key: Key) -> Signer | None:
            uri = keystore.uri_for(key)
            if uri is None:
                return None
            if uri not in backends:  # each distinct key is opened once for the whole batch
                backends[uri] = open_backend(uri, passphrase_for)
            return KeySigner(backends[uri], key)

        outcome = sign_batch(
            review_, signer_for, given, GoTime.from_datetime(now).format(), again=again
        )
        for gun, one in outcome.outcomes.items():
            store.save(record_signing(store.load(gun), one.state), one.bodies)
    # Recorded first: a failure from here on leaves a record, and `sign --again` recovers.
    data = outcome.document.to_bytes()
    if out_file is not None:
        atomic_write(out_file, data, mode=0o644, sweep_stale=True)
        err.print(f"Signatures written to {out_file}", markup=False)
    if qr_out is not None:
        from ceremony.core.errors import UsageError
        from ceremony.qr.frames import ContentType
        from ceremony.qr.transfer import write_qr

        try:
            write_qr(data, qr_out, ContentType.SIGNATURES, console=err)
        except UsageError:  # too large for one static code: an animated fountain transfer
            write_qr(data, qr_out, ContentType.SIGNATURES, console=err, animated=True)
        err.print(f"Signatures QR code(s) written to {qr_out}", markup=False)
    signed = sum(len(r.signatures) for d in outcome.document.documents for r in d.roles)
    _say(
        f"Made {signed} signature(s) for {len(outcome.outcomes)} repositories of batch "
        f"{batch.id}" + (f"; skipped {', '.join(review_.skipped)}" if review_.skipped else "")
    )
    _say(f"signatures digest: {outcome.document.digest}")
    _say(f"signatures words: {digest_phrase(outcome.document.digest)}")
    for gun, one in outcome.outcomes.items():
        for role in one.unsigned_roles:
            err.print(
                f"note: {printable(gun)}: this machine holds no key for {role}; another "
                "keyholder must sign it.",
                markup=False,
            )
