"""A batch request reviewed and signed as one ceremony, each repository checked on its own.

Every inner request goes through `review_request` exactly as a single request does (every
trust rule of docs/threat-model.md, per repository). The batch adds only:

- one refusal for the whole batch when any repository fails verification, the trust rules
  or the policy, naming each failing repository; the keyholder may leave named
  repositories out with `skip` (never a wildcard), and the skip is recorded in the
  signatures document;
- acknowledgements given once for the batch: a fingerprint confirms that key wherever the
  batch adds it (a key's fingerprint is the same for every certificate of it, and each
  certificate was checked by the review: CN = its GUN, the key confirmed), `--accept ROLE`
  accepts that change in every repository that makes it, `--abandon ID` names one request.
  An acknowledgement that matches nothing in the batch is refused, like a single one;
- signing every repository first and recording all of it before the one signatures
  document is written (what a single `sign` promises, for the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ceremony.core.batch import BatchRequest, BatchSignatures
from ceremony.core.errors import CeremonyError, InputRejected, UsageError
from ceremony.core.metadata import Key
from ceremony.offline.review import (
    Acknowledgements,
    Needed,
    ReviewResult,
    SigningOutcome,
    keys_to_sign,
    sign_review,
)
from ceremony.signing.signer import Signer


@dataclass(frozen=True, slots=True)
class BatchReview:
    """Each repository's review, or why it cannot be signed."""

    batch: BatchRequest
    results: Mapping[str, ReviewResult]  # GUN -> review, in batch order
    failures: Mapping[str, str]  # GUN -> the one sentence saying why (verification, policy, replay)
    skipped: tuple[str, ...]

    @property
    def to_sign(self) -> list[ReviewResult]:
        return [r for g, r in self.results.items() if g not in self.skipped]

    def refusal(self) -> InputRejected | None:
        """The batch is refused as a whole when a repository not skipped fails."""
        failing = [(g, why) for g, why in self.failures.items() if g not in self.skipped]
        if not failing:
            return None
        names = ", ".join(g for g, _ in failing)
        thin = any("without --thin" in why for _, why in failing)
        hint = (
            "; this machine lacks a base the thin request names: re-export without --thin"
            if thin
            else ""
        )
        return InputRejected(
            f"The batch is refused: {len(failing)} repository(ies) fail the checks ({names}){hint}; "
            "nothing was signed. Investigate them, or sign the others with --skip GUN for each."
        )


def review_batch(
    batch: BatchRequest,
    review: Callable[[str, int], ReviewResult],
    skip: Sequence[str],
    *,
    again: bool = False,
) -> BatchReview:
    """Review every inner request (`review(gun, index)`); collect failures instead of raising."""
    guns = [r.gun for r in batch.requests]
    unknown = [g for g in skip if g not in guns]
    if unknown:
        raise UsageError(
            f"--skip {unknown[0]}: the batch holds no request for that repository "
            "(name each repository to skip exactly)."
        )
    results: dict[str, ReviewResult] = {}
    failures: dict[str, str] = {}
    for index, request in enumerate(batch.requests):
        try:
            result = review(request.gun, index)
        except CeremonyError as exc:
            failures[request.gun] = exc.message
            continue
        results[request.gun] = result
        if result.policy_violations:
            failures[request.gun] = "the signing policy refuses it: " + "; ".join(
                result.policy_violations
            )
        elif result.already is not None and not again and not keys_to_sign(result, again=False):
            failures[request.gun] = (
                f"request {request.id} was already signed here on {result.already.signed_at[0]} "
                "(a replay); `sign --again` re-signs the identical bytes"
            )
        elif again and result.already is None:
            failures[request.gun] = f"--again: request {request.id} was never signed here"
    return BatchReview(batch, results, failures, tuple(dict.fromkeys(skip)))


def _with_earlier(result: ReviewResult, given: Acknowledgements) -> Acknowledgements:
    """What was acknowledged when this request was signed here before counts again."""
    if result.already is None:
        return given
    names = result.already.acknowledged
    return Acknowledgements(
        (*given.keys, *(a[4:] for a in names if a.startswith("key:"))),
        (*given.roles, *(a[5:] for a in names if a.startswith("role:"))),
        (*given.abandoned, *(a[8:] for a in names if a.startswith("abandon:"))),
    )


def applicable(result: ReviewResult, given: Acknowledgements) -> Acknowledgements:
    """The batch's acknowledgements that name something in this repository's request."""
    given = _with_earlier(result, given)
    roles = {n for need in result.needed if need.kind == "role" for n in need.names}
    abandoned = {n for need in result.needed if need.kind == "abandon" for n in need.names}
    return Acknowledgements(
        tuple(k for k in given.keys if any(fp.startswith(k) for fp in result.confirmable)),
        tuple(r for r in given.roles if r in roles),
        tuple(a for a in given.abandoned if a in abandoned),
    )


def check_batch_acknowledgements(review: BatchReview, given: Acknowledgements) -> None:
    """Refuse an acknowledgement that names nothing in any repository signed (a typo, a wrong record)."""
    results = review.to_sign
    for key in given.keys:
        if not any(applicable(r, Acknowledgements(keys=(key,))).keys for r in results):
            # the single-request check gives the precise sentence (format, or matches nothing)
            results[0].check_acknowledgements(Acknowledgements(keys=(key,)))
    for role in given.roles:
        if not any(applicable(r, Acknowledgements(roles=(role,))).roles for r in results):
            raise InputRejected(
                f"--accept {role}: no request in this batch changes who signs {role}; "
                "check the review before acknowledging anything."
            )
    for rid in given.abandoned:
        if not any(applicable(r, Acknowledgements(abandoned=(rid,))).abandoned for r in results):
            raise InputRejected(
                f"--abandon {rid}: no request in this batch replaces request {rid}; "
                "check the review before acknowledging anything."
            )


def missing_needs(review: BatchReview, given: Acknowledgements) -> list[tuple[Needed, list[str]]]:
    """Each distinct acknowledgement still missing, once, with the repositories that need it."""
    found: dict[tuple[str, tuple[str, ...], str], tuple[Needed, list[str]]] = {}
    for result in review.to_sign:
        for need in result.missing(applicable(result, given)):
            key = (need.kind, need.names, need.why if need.quorum else "")
            found.setdefault(key, (need, []))[1].append(result.request.gun)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    document: BatchSignatures
    outcomes: Mapping[str, SigningOutcome]


def sign_batch(
    review: BatchReview,
    signer_for: Callable[[Key], Signer | None],
    given: Acknowledgements,
    signed_at: str,
    *,
    again: bool = False,
) -> BatchOutcome:
    """Sign every repository not skipped (all in memory); the caller records, then writes."""
    refusal = review.refusal()
    if refusal is not None:
        raise refusal
    results = review.to_sign
    if not results:
        raise InputRejected("Every repository of the batch was skipped; nothing was signed.")
    check_batch_acknowledgements(review, given)
    outcomes: dict[str, SigningOutcome] = {}
    for result in results:
        mine = applicable(result, given)
        outcome = sign_review(
            result, signer_for, keys_to_sign(result, again=again), mine, signed_at
        )
        outcomes[result.request.gun] = outcome
    document = BatchSignatures(
        review.batch.id,
        review.batch.digest,
        tuple(o.document for o in outcomes.values()),
        review.skipped,
    )
    return BatchOutcome(document, outcomes)


def merged(given: Acknowledgements, extra: Acknowledgements) -> Acknowledgements:
    return replace(
        given,
        keys=(*given.keys, *extra.keys),
        roles=(*given.roles, *extra.roles),
        abandoned=(*given.abandoned, *extra.abandoned),
    )


__all__ = [
    "BatchOutcome",
    "BatchReview",
    "applicable",
    "check_batch_acknowledgements",
    "merged",
    "missing_needs",
    "review_batch",
    "sign_batch",
]
