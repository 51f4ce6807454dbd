"""An already-expired targets role can still be refreshed (cf. notary issue #1573).

The online half must read a repository whose roles expired, or `refresh` could
never repair it. The clock is moved forward for the online half only (time is
an input of every online operation); the real server and the offline half run
on the real clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ceremony.core.gotime import utc_now
from online.client.config import ServerConfig
from online.client.http import TrustServer
from online.home import Home
from online.operations import export_request, refresh_changes
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer


def test_expired_targets_are_refreshed(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    later = utc_now() + timedelta(days=3 * 365 + 2)  # targets (3 years) has expired by then
    home = Home(Path(rig.env["CEREMONY_ONLINE_HOME"]))
    config = ServerConfig.from_env(notary_server.url, notary_server.ca)

    with TrustServer(config) as server:
        changes = refresh_changes(home, server, rig.gun, later, [])
        assert [c.role for c in changes] == ["targets"]
        home.repository(rig.gun).stage(changes)
        request = export_request(home, server, rig.gun, later, accept_expired_timestamp=True)
    assert [(e.role, e.version) for e in request.expect] == [("targets", 2)]
    path = tmp_path / "refresh.request.json"
    path.write_bytes(request.to_bytes())

    review = rig.run("ceremony", "review", str(path), "--full").stdout
    assert "(content unchanged: re-signed with a new version and expiry)" in review
    # made three years ahead of this clock, on a timestamp expired by then: both flagged
    assert "! the base timestamp expired at" in review and "days ahead of this machine" in review
    sign = ["ceremony", "sign", str(path), "--out", str(tmp_path / "refresh.sig"), "--yes"]
    rig.run(*sign, "--accept", "timestamp")
    rig.run("ceremony-online", "publish", str(tmp_path / "refresh.sig"))
    assert "a" in notary_cli.list_targets(rig.gun)
    targets = notary_server.fetch(rig.gun, "targets.json")
    assert b'"version":2' in targets and str(later.year + 3).encode() in targets
