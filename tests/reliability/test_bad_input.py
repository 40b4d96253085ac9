"""Bad input, one parametrised test per class (the catalogue lives in tests.support.bad_input).

Each case asserts what a user sees (an error before any write, or one failed record whose
message names the row, column and field) and that nothing already synced is lost. The same
catalogue produces the bad-input table of RELIABILITY.md, so the table cannot drift from
what is tested.
"""

from __future__ import annotations

import pytest

from tests.support.bad_input import CATALOGUE, ERROR, FAILS, SYNCED, BadInput, run_case

#: Classes the issue asks for by name; each must be in the catalogue.
REQUIRED = {
    "null_primary_key",
    "duplicate_primary_key",
    "record_id_not_uuid",
    "unknown_field_name",
    "unknown_field_id",
    "wrong_type_integer",
    "text_over_255",
    "invalid_email",
    "invalid_phone",
    "unknown_option_label",
    "nan",
    "infinity",
    "naive_datetime",
    "aware_datetime",
    "unicode_and_emoji",
    "empty_source",
    "half_loaded_source",
    "source_query_fails",
    "kizen_400_field_errors",
    "kizen_401",
    "kizen_403",
    "kizen_404_deleted_in_kizen",
    "kizen_400_archived_name",
    "identifier_held_by_archived_record",
    "malformed_yaml",
}


def test_catalogue_covers_at_least_30_classes_including_the_required_ones() -> None:
    names = [case.name for case in CATALOGUE]
    assert len(names) == len(set(names))
    assert len(names) >= 30
    assert set(names) >= REQUIRED, sorted(REQUIRED - set(names))
    assert {case.kind for case in CATALOGUE} == {ERROR, FAILS, SYNCED}


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.name for case in CATALOGUE])
def test_bad_input(case: BadInput) -> None:
    run_case(case)
