"""Result versions are bumped (or a refactor is declared one) whenever their code changes."""

import ual_dagster.versions as versions

DECIDE = (
    "code that a result version stands for changed. If the step's output changes, bump its version in "
    "ual_dagster/versions.py; either way record the decision with `python -m ual_dagster.versions`:\n"
)


def test_no_result_code_changed_without_its_version_being_recorded():
    changed = versions.changed_without_a_bump()
    assert changed == [], DECIDE + "\n".join(changed)


def test_every_version_names_its_sources_and_they_exist():
    constants = {v for k, v in vars(versions).items() if k.isupper() and isinstance(v, str) and k not in {"LOCK"}}
    assert constants == set(versions.SOURCES)
    missing = [f for files in versions.SOURCES.values() for f in files if not (versions.PACKAGE / f).is_file()]
    assert missing == []


def test_comments_docstrings_and_formatting_do_not_count_but_code_does(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "PACKAGE", tmp_path)
    (tmp_path / "step.py").write_text('"""Doc."""\n\ndef f(x):\n    """Adds one."""\n    return x + 1\n')
    before = versions.source_digest("step.py")
    (tmp_path / "step.py").write_text(
        '"""Another doc."""\n\n\ndef f(x):  # why\n    """Adds one, reworded."""\n    return (x + 1)\n'
    )
    assert versions.source_digest("step.py") == before
    (tmp_path / "step.py").write_text('"""Doc."""\n\ndef f(x):\n    return x + 2\n')
    assert versions.source_digest("step.py") != before


def test_a_change_is_reported_until_it_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "PACKAGE", tmp_path)
    monkeypatch.setattr(versions, "LOCK", tmp_path / "versions.lock.json")
    monkeypatch.setattr(versions, "SOURCES", {"step-1": ("step.py",)})
    (tmp_path / "step.py").write_text("def f(x):\n    return x + 1\n")
    assert versions.changed_without_a_bump() == ["step-1: not recorded yet"]
    versions.record()
    assert versions.changed_without_a_bump() == []
    (tmp_path / "step.py").write_text("def f(x):\n    return x + 2\n")
    assert versions.changed_without_a_bump() == ["step-1: ual_dagster/step.py changed"]
