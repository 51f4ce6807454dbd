"""Coverage-guided fuzzing of every parser (`make fuzz`; `tests/test_fuzz_short.py`).

One harness module per parser (`fuzz/harness_<name>.py`, each defining `TARGET`), a
shared driver (`fuzz.driver`), the worker that runs one harness under atheris
(`fuzz.worker`), the seed corpora (`fuzz.seeds`) and the runner (`python -m fuzz`).
"""

NAMES = (
    "canonical",
    "metadata",
    "request",
    "signatures",
    "public_keys",
    "keyfile",
    "qr_frame",
    "fountain",
    "changelist",
    "policy",
    "online_config",
    "liveness",
    "batch",
    "trust_state",
)
