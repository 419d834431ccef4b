from __future__ import annotations

import pytest

from medlens.errors import UnknownNameError
from medlens.registry import Registry


def test_register_get_and_unknown_name_lists_choices() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("a")
    def a() -> int:
        return 1

    assert reg.get("a") is a and "a" in reg and reg.names() == ["a"]
    with pytest.raises(UnknownNameError, match="unknown widget 'b'; available: a"):
        reg.get("b")
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(a)


def test_replaced_stands_in_for_an_entry_and_restores_it_even_after_an_error() -> None:
    reg: Registry[str] = Registry("widget")
    reg.register("a")("original")
    with reg.replaced("a", "stand-in") as obj:
        assert obj == "stand-in" and reg.get("a") == "stand-in"
    assert reg.get("a") == "original"
    with pytest.raises(RuntimeError), reg.replaced("a", "stand-in"):
        raise RuntimeError("an arm failed")
    assert reg.get("a") == "original"
    with pytest.raises(UnknownNameError, match="unknown widget 'b'"), reg.replaced("b", "x"):
        pass
    assert reg.names() == ["a"]
