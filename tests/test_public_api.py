"""The names the README tells people to import resolve, and unknown names fail clearly."""

from __future__ import annotations

import pytest

import kizen_sync


@pytest.mark.parametrize("name", kizen_sync.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(kizen_sync, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Runner'"):
        _ = kizen_sync.Runner  # type: ignore[attr-defined]
