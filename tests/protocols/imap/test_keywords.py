"""tuimail.store.keywords: IMAP keywords kept per folder, shared in the process, persisted atomically."""

import json

from tuimail.store.keywords import KEYWORDS_FILE, Keywords, keywords_for


def test_set_update_forget_and_persist(tmp_path):
    kw = Keywords(tmp_path)
    assert kw.get(1) == frozenset() and kw.version == 0
    kw.set(1, {"$Forwarded", "Work"})
    kw.update({2: frozenset({"Work"}), 3: frozenset()})
    assert kw.names() == {"$Forwarded", "Work"}
    assert dict(kw.mapping()) == {1: {"$Forwarded", "Work"}, 2: {"Work"}}
    assert json.loads((tmp_path / KEYWORDS_FILE).read_text()) == {"1": ["$Forwarded", "Work"], "2": ["Work"]}
    version = kw.version
    kw.update({2: frozenset({"Work"})})  # no change: no write, same version
    assert kw.version == version
    kw.forget([1, 99])
    assert Keywords(tmp_path).mapping() == {2: frozenset({"Work"})}


def test_one_object_per_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert keywords_for(tmp_path / "a") is keywords_for(tmp_path / "a")
    assert keywords_for(tmp_path / "a") is not keywords_for(tmp_path / "b")


def test_a_damaged_file_means_no_keywords(tmp_path):
    (tmp_path / KEYWORDS_FILE).write_text("{not json")
    assert Keywords(tmp_path).mapping() == {}
