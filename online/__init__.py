"""The online half of the ceremony toolkit: the side that talks to the trust server.

It fetches and verifies what a Notary 0.7 server publishes, stages changes,
exports signing requests and publishes collected signatures. It holds no
private key: root, targets and delegation keys stay on the offline machine, and
snapshot and timestamp keys are managed by the server.

Import rule (checked by a test): `online` imports only the network-free core of
`ceremony` (metadata, canonical JSON, verification, changes, bundles, qr) and
never the key-holding modules (key store, signers, the offline CLI).
"""
