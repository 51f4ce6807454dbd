"""A token PIN is never sent when the token says one more wrong PIN locks it."""

from __future__ import annotations

import pytest
from pkcs11.constants import TokenFlag

from ceremony.signing.pkcs11 import PinLocked, check_pin_tries


def test_final_try_stops_before_any_pin_is_sent() -> None:
    with pytest.raises(PinLocked) as caught:
        check_pin_tries("token 'ceremony'", int(TokenFlag.USER_PIN_FINAL_TRY))
    assert "one more wrong PIN locks it, so no PIN was tried" in caught.value.message
    assert caught.value.exit_code == 3


def test_locked_pin_is_refused_and_a_low_count_is_allowed() -> None:
    with pytest.raises(PinLocked):
        check_pin_tries("token 'ceremony'", int(TokenFlag.USER_PIN_LOCKED))
    check_pin_tries("token 'ceremony'", int(TokenFlag.USER_PIN_COUNT_LOW))
    check_pin_tries("token 'ceremony'", 0)
