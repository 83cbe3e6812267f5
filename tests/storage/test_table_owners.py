"""Each DuckDB table has one owner module (ual_dagster/storage/tables.py): SQL naming a table
appears in its owner only; everyone else calls the owner's functions.

The scan reads every string of ual_dagster/ and assets/ (docstrings excepted; an f-string
counts with its placeholders blanked), case-insensitively: FROM / JOIN / INTO / UPDATE /
TABLE [IF [NOT] EXISTS] / DESCRIBE followed by a table's name, and a quoted name in an
information_schema query. A table name passed as a literal to the generic SQL helpers
(`replace_rows`, `table_exists`) counts too. Tests and benchmarks are not scanned: a test
may check stored rows with raw SQL.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from ual_dagster.storage.tables import OWNERS
from ual_dagster.versions import _without_docstrings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ual_dagster", "assets")
SQL_HELPERS = {"replace_rows", "table_exists"}
_NAME = r'"?([A-Za-z_][A-Za-z0-9_]*)\b"?'
STATEMENT = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|DESCRIBE|TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?)\s+" + _NAME, re.IGNORECASE
)
CREATE = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME, re.IGNORECASE)
QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def strings(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every string of the source but docstrings; an f-string as one text."""
    tree = _without_docstrings(ast.parse(source))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def tables_named(text: str) -> set[str]:
    """The known tables a piece of SQL names."""
    found = {m.group(1).lower() for m in STATEMENT.finditer(text)}
    if "information_schema" in text.lower():
        found |= {m.group(1).lower() for m in QUOTED.finditer(text)}
    return found & set(OWNERS)


def helper_tables(source: str) -> Iterator[tuple[int, str]]:
    """(line, table) of a table name passed as a literal to a generic SQL helper."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if func not in SQL_HELPERS:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.lower() in OWNERS:
                yield node.lineno, arg.value.lower()


def uses(source: str) -> list[tuple[int, str]]:
    """(line, table) of every place the source names a table in SQL."""
    found = {(line, t) for line, text in strings(source) for t in tables_named(text)}
    found |= set(helper_tables(source))
    return sorted(found)


def _sources() -> Iterator[tuple[Path, str, str]]:
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path, _module_name(path), path.read_text(encoding="utf-8")


def test_the_scanner_sees_sql_in_every_form():
    source = '''
"""Docstring: read FROM samples is prose here."""
A = "select * from samples s join uncertainty u using (sample_id)"
B = f"""
    SELECT count(*)
    FROM
        "eval_scores" WHERE x = {1}
"""
C = "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('training_sets', 'x')"
replace_rows(con, "comparisons", "TRUE", [], frame)
ok = table_exists(con, name="token_clustering")
D = "UPDATE elicitation_batches SET x = 1"
E = "from samples_view s"  # another name: not the table
'''
    assert uses(source) == [
        (3, "samples"),
        (3, "uncertainty"),
        (4, "eval_scores"),
        (9, "training_sets"),
        (10, "comparisons"),
        (11, "token_clustering"),
        (12, "elicitation_batches"),
    ]


def test_every_table_created_is_listed_and_created_by_its_owner():
    created: dict[str, set[str]] = {}
    for path, module, source in _sources():
        for _, text in strings(source):
            for m in CREATE.finditer(text):
                created.setdefault(m.group(1).lower(), set()).add(module)
    unlisted = sorted(set(created) - set(OWNERS))
    assert unlisted == [], f"tables without an owner: add them to ual_dagster/storage/tables.py: {unlisted}"
    wrong = {t: sorted(mods) for t, mods in created.items() if mods != {OWNERS[t]}}
    assert wrong == {}, f"a table must be created by its owner only (ual_dagster/storage/tables.py): {wrong}"
    assert sorted(OWNERS) == sorted(created), "an owner is listed for a table nobody creates"


def test_sql_naming_a_table_stands_in_its_owner_only():
    outside = [
        f"{path.relative_to(ROOT)}:{line}: SQL names table {table!r}, owned by {OWNERS[table]}: call its functions"
        for path, module, source in _sources()
        for line, table in uses(source)
        if module != OWNERS[table]
    ]
    assert outside == [], "\n".join(outside)
