"""The mutants' spec still fits the code: a refactor that makes a mutant stale turns the normal
suite red here, instead of `make mutants` reporting it much later. No mutant is run."""

from pathlib import Path

import pytest

from tests.mutation.run import SPEC, file_of, load_mutants

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = load_mutants(SPEC)  # checks keys, types, unique kebab-case ids, replace != find


def mutant_id(mutant) -> str:
    return mutant.id


def test_ids_are_unique_and_there_are_mutants():
    ids = [m.id for m in MUTANTS]
    assert ids and len(ids) == len(set(ids))


@pytest.mark.parametrize("mutant", MUTANTS, ids=mutant_id)
def test_mutant_applies_once_and_still_parses(mutant):
    source = (ROOT / mutant.file).read_text(encoding="utf-8")
    assert source.count(mutant.find) == 1, (
        f"{mutant.id}: find must occur exactly once in {mutant.file}, "
        f"found {source.count(mutant.find)} times; update tests/mutation/mutants.toml"
    )
    assert mutant.replace != mutant.find
    mutated = mutant.mutated(source)
    assert mutated != source
    if mutant.file.endswith(".py"):
        # what ast.parse checks, about 3x faster (no AST objects built), plus compile errors
        compile(mutated, mutant.file, "exec", dont_inherit=True)


@pytest.mark.parametrize("mutant", MUTANTS, ids=mutant_id)
def test_named_tests_exist(mutant):
    missing = [t for t in mutant.tests if not (ROOT / file_of(t)).exists()]
    assert not missing, f"{mutant.id}: no such test files: {missing}"
    assert mutant.bug.strip()
