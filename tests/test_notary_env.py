"""The test rig itself: the real server starts and the real client can publish to it."""

from tests.notary_env import NotaryCli


def test_real_notary_client_publishes_and_lists(notary_cli: NotaryCli, new_gun, tmp_path) -> None:
    gun = new_gun()
    payload = tmp_path / "hello.txt"
    payload.write_bytes(b"hello\n")
    notary_cli.run("init", "-p", gun)
    notary_cli.run("add", "-p", gun, "hello", str(payload))
    listed = notary_cli.list_targets(gun)
    assert listed == {"hello": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
