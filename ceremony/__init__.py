"""Air-gapped signing ceremonies for Notary / Docker Content Trust.

This package is the offline half *and* the network-free core that the online
half imports. It must never import `online` or any networking module; a test
in `tests/test_airgap.py` enforces that.
"""

__version__ = "0.1.0"
