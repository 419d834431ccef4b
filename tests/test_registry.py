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
