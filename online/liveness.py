"""`ceremony-online check-liveness`: which offline keys are proven to work, and can each role sign?

Proofs (`ceremony key check`) are checked against the keys that the published,
verified repository lists: root and targets in root, each delegation in its
parent. The repository is fetched through the `Server` seam from the anchor
this home trusts, as every other operation does (`online.operations.fetch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ceremony.core.documents import LivenessProof
from ceremony.core.errors import InputRejected, MalformedInput, VerificationFailed
from ceremony.core.liveness import LivenessAssessment, ProofSet, RoleKeysListed, assess
from ceremony.core.metadata import Targets
from ceremony.core.verify import RepositoryReport
from online.client import Server
from online.home import Home
from online.operations import fetch


@dataclass(frozen=True, slots=True)
class LivenessReport:
    gun: str
    root_version: int
    assessment: LivenessAssessment


def published_signers(report: RepositoryReport) -> list[RoleKeysListed]:
    """Root and targets as root lists them, then every delegation as its parent lists it."""
    root = report.root.body
    roles = [
        RoleKeysListed(
            name,
            tuple(root.keys[k] for k in root.roles[name].keyids if k in root.keys),
            root.roles[name].threshold,
        )
        for name in ("root", "targets")
    ]
    parents: list[Targets] = [report.targets.body, *(e.body for e in report.delegations.values())]
    for parent in parents:
        for spec in parent.delegations.roles:
            keys = tuple(
                parent.delegations.keys[k] for k in spec.keyids if k in parent.delegations.keys
            )
            roles.append(RoleKeysListed(spec.name, keys, spec.threshold))
    return roles


def read_proof(source: str, data: bytes) -> LivenessProof:
    """A liveness proof, or MalformedInput naming the file it came from."""
    try:
        return LivenessProof.from_bytes(data)
    except MalformedInput as exc:
        raise MalformedInput(f"{source}: {exc.message}") from exc


def parse_proofs(documents: Sequence[tuple[str, bytes]], nonce: bytes | None) -> list[ProofSet]:
    """Each (source, bytes) as a liveness proof; with `nonce`, each must answer it."""
    proofs = []
    for source, data in documents:
        proof = read_proof(source, data)
        if nonce is not None and proof.nonce != nonce.hex():
            made_for = f"nonce {proof.nonce}" if proof.nonce else "no nonce"
            raise VerificationFailed(
                f"The liveness proof {source} was made for {made_for}, not for the nonce given: "
                "make a new one with `ceremony key check --nonce` and this nonce."
            )
        proofs.append(ProofSet(source, proof.when, bytes.fromhex(proof.nonce), proof.signatures))
    return proofs


def check_liveness(
    home: Home,
    server: Server,
    gun: str,
    documents: Sequence[tuple[str, bytes]],
    now: datetime,
    *,
    nonce: bytes | None = None,
) -> LivenessReport:
    """Verify the proofs against what `gun` publishes now (fetched and verified)."""
    proofs = parse_proofs(documents, nonce)  # a foreign or malformed file fails before any fetch
    fetched = fetch(home.repository(gun), server, now)
    if fetched is None:
        raise InputRejected(f"{gun} does not exist on the server, so it lists no key to prove.")
    report = fetched.report
    assessment = assess(published_signers(report), proofs)
    return LivenessReport(gun, report.root.body.version, assessment)
