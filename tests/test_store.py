"""The label store: picks with history, oracle flag, exact masks, clicks/masks, two processes, bad files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from scarceseg.errors import InputError
from scarceseg.store import SCHEMA_VERSION, LabelStore, Pick, open_store
from scarceseg.store.records import pack_mask, unpack_mask


@pytest.fixture
def store(tmp_path: Path):
    with open_store(tmp_path / "wd") as s:
        yield s


def test_open_store_creates_folder_and_schema(tmp_path: Path) -> None:
    wd = tmp_path / "a" / "b"
    with open_store(wd) as s:
        assert s.path == wd / "store.sqlite"
        assert s.all_picks() == []
    conn = sqlite3.connect(wd / "store.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "picks", "clicks", "masks"} <= tables
    conn.close()


def test_add_get_history_order_and_latest_wins(store: LabelStore) -> None:
    a = store.add_pick("c1", 3, point=(120, 98), who="alice", note="first")
    b = store.add_pick("c2", 0, who="bob")
    c = store.add_pick("c1", 5, point=(10, 11), who="carol")
    assert a < b < c
    hist = store.history("c1")
    assert [p.id for p in hist] == [a, c]
    assert [p.candidate for p in hist] == [3, 5]
    assert hist[0].point == (120, 98) and hist[0].who == "alice" and hist[0].note == "first"
    assert hist[0].when.endswith("Z") and hist[0].when <= hist[1].when
    current = store.current_picks()
    assert list(current) == ["c1", "c2"]
    assert current["c1"].id == c and current["c1"].candidate == 5
    assert current["c2"].point is None and current["c2"].mask is None
    assert [p.id for p in store.all_picks()] == [a, b, c]
    assert store.get_pick(b) == Pick(b, "c2", 0, None, "bob", current["c2"].when)
    assert store.history("never") == []
    with pytest.raises(KeyError):
        store.get_pick(999)


def test_oracle_flag_round_trip_and_filters(store: LabelStore) -> None:
    human = store.add_pick("c1", 1, who="alice")
    oracle = store.add_pick("c1", 2, who="oracle", oracle=True)
    only_oracle = store.add_pick("c2", 0, who="oracle", oracle=True)
    assert store.get_pick(oracle).oracle is True and store.get_pick(human).oracle is False
    assert {c: p.id for c, p in store.current_picks().items()} == {"c1": oracle, "c2": only_oracle}
    assert {c: p.id for c, p in store.current_picks(include_oracle=False).items()} == {"c1": human}
    assert {c: p.id for c, p in store.current_picks(oracle_only=True).items()} == {"c1": oracle, "c2": only_oracle}


@pytest.mark.parametrize("shape", [(7, 13), (1, 1), (64, 64), (3, 5, 9)])
def test_mask_blob_round_trip_exact(store: LabelStore, shape: tuple[int, ...]) -> None:
    mask = np.random.default_rng(1).random(shape) > 0.5
    assert np.array_equal(unpack_mask(*pack_mask(mask)), mask)
    if len(shape) == 2:
        pid = store.add_pick("c", 0, mask=mask, proposal_id="abc123")
        got = store.get_pick(pid)
        assert got.mask.dtype == bool and got.mask.shape == shape and np.array_equal(got.mask, mask)
        assert got.proposal_id == "abc123"
    mid = store.save_mask("c", "final", mask)
    assert mid >= 1 and np.array_equal(store.latest_mask("c", "final"), mask)


def test_clicks_and_masks_tables(store: LabelStore) -> None:
    store.add_click("c1", 4, 5, positive=True, session="s1", who="alice")
    store.add_click("c1", 6, 7, positive=False, session="s1", who="alice")
    store.add_click("c1", 1, 2, z=3, session="s2")
    store.add_click("c2", 0, 0)
    clicks = store.clicks("c1")
    assert [(c.y, c.x, c.z, c.positive, c.session) for c in clicks] == [
        (4, 5, None, True, "s1"), (6, 7, None, False, "s1"), (1, 2, 3, True, "s2"),
    ]
    assert [c.y for c in store.clicks("c1", session="s2")] == [1]
    assert store.clicks("none") == []
    first = np.zeros((4, 4), bool)
    first[1, 1] = True
    second = ~first
    store.save_mask("c1", "refined", first, who="alice")
    store.save_mask("c1", "refined", second, who="alice")
    store.save_mask("c1", "final", first)
    assert np.array_equal(store.latest_mask("c1", "refined"), second)
    assert np.array_equal(store.latest_mask("c1", "final"), first)
    assert store.latest_mask("c1", "other") is None


def test_invalid_picks_are_rejected(store: LabelStore) -> None:
    with pytest.raises(ValueError, match="case_id"):
        store.add_pick("", 0)
    with pytest.raises(ValueError, match="candidate"):
        store.add_pick("c", -1)
    with pytest.raises(ValueError, match="candidate"):
        store.add_pick("c", 1.5)
    with pytest.raises(ValueError, match="needs"):
        store.add_pick("c", None)
    with pytest.raises(ValueError, match="point"):
        store.add_pick("c", 0, point=(1, 2, 3))
    assert store.all_picks() == []  # nothing half-written
    assert store.add_pick("c", np.int64(2), point=(np.int32(1), np.int64(2))) == 1
    assert store.get_pick(1).point == (1, 2) and store.get_pick(1).candidate == 2


_WRITER = """
import sys
import numpy as np
from scarceseg.store import open_store
with open_store(sys.argv[1]) as s:
    for i in range(int(sys.argv[2])):
        s.add_pick("proc", i, point=(i, 2 * i), who="second", mask=np.eye(5, dtype=bool))
print("ok")
"""

_READER = """
import json, sys
from scarceseg.store import open_store
with open_store(sys.argv[1]) as s:
    print(json.dumps([[p.case_id, p.candidate, list(p.point), p.who, p.oracle, int(p.mask.sum())]
                      for p in s.history("main")]))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=True)


def test_store_survives_a_second_process(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    # written by another process, read here
    assert _python(_WRITER, str(wd), "2").stdout.strip() == "ok"
    with open_store(wd) as s:
        hist = s.history("proc")
        assert [(p.candidate, p.point, p.who) for p in hist] == [(0, (0, 0), "second"), (1, (1, 2), "second")]
        assert np.array_equal(hist[1].mask, np.eye(5, dtype=bool))
        # written here, read by another process (the connection is closed first)
        s.add_pick("main", 7, point=(3, 4), who="me", oracle=True, mask=np.ones((2, 3), bool))
        s.add_pick("main", 8, point=(5, 6), who="me", mask=np.ones((2, 2), bool))
    out = json.loads(_python(_READER, str(wd)).stdout)
    assert out == [["main", 7, [3, 4], "me", True, 6], ["main", 8, [5, 6], "me", False, 4]]


def test_concurrent_writes_from_another_process(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    open_store(wd).close()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(wd), "40"], stdout=subprocess.PIPE, text=True)
    with open_store(wd) as s:
        for i in range(40):
            s.add_pick("main", i)
    assert proc.communicate(timeout=60)[0].strip() == "ok" and proc.returncode == 0
    with open_store(wd) as s:
        assert len(s.history("proc")) == 40 and len(s.history("main")) == 40
        ids = [p.id for p in s.all_picks()]
        assert ids == sorted(set(ids)) and len(ids) == 80


def test_concurrent_writes_from_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with LabelStore(path) as a, LabelStore(path) as b:
        ia = a.add_pick("x", 1, who="a")
        ib = b.add_pick("x", 2, who="b")
        assert [p.id for p in a.history("x")] == [ia, ib] == [p.id for p in b.history("x")]
        assert a.current_picks()["x"].who == "b"

        def write(store: LabelStore, who: str) -> None:
            for i in range(25):
                store.add_pick("t", i, who=who)

        threads = [threading.Thread(target=write, args=(s, w)) for s, w in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hist = a.history("t")
        assert len(hist) == 50 and sorted(p.candidate for p in hist if p.who == "a") == list(range(25))


def test_locked_store_is_a_clear_error_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with LabelStore(path) as holder, LabelStore(path, timeout=0.05) as waiter:
        holder._conn.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(InputError, match="locked") as info:
            waiter.add_pick("c", 0)
        assert str(path) in str(info.value)
        holder._conn.execute("COMMIT")
        assert waiter.add_pick("c", 0) == 1  # the failed write left no open transaction behind


def test_garbage_file_is_a_clear_input_error(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "store.sqlite").write_bytes(b"this is not an sqlite file\n" * 100)
    with pytest.raises(InputError, match="not a scarceseg label store") as info:
        open_store(wd)
    assert info.value.path == wd / "store.sqlite"
    assert "store.sqlite" in str(info.value)


def test_workdir_that_is_a_file_and_newer_schema(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        open_store(tmp_path / "file")
    path = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(InputError, match="newer"):
        LabelStore(path)


def test_export_json_is_readable(store: LabelStore, tmp_path: Path) -> None:
    store.add_pick("c1", 3, point=(1, 2), who="alice", mask=np.eye(4, dtype=bool))
    store.add_pick("c1", 1, who="oracle", oracle=True)
    store.add_click("c1", 1, 1, positive=False)
    store.save_mask("c1", "final", np.ones((2, 2), bool))
    out = store.export_json(tmp_path / "dump" / "picks.json")
    dump = json.loads(out.read_text(encoding="utf-8"))
    assert dump["schema_version"] == SCHEMA_VERSION and dump["current"] == {"c1": 2}
    assert dump["picks"][0] | {"when": None} == {
        "id": 1, "case_id": "c1", "candidate": 3, "point": [1, 2], "who": "alice", "when": None,
        "oracle": False, "proposal_id": "", "note": "", "mask_shape": [4, 4], "mask_area": 4,
    }
    assert dump["picks"][1]["oracle"] is True
    assert dump["clicks"][0]["positive"] is False and dump["masks"][0]["area"] == 4


def test_context_manager_closes(tmp_path: Path) -> None:
    with open_store(tmp_path) as s:
        s.add_pick("c", 0)
    with pytest.raises(sqlite3.ProgrammingError):
        s.add_pick("c", 1)
    s.close()  # idempotent


def test_latest_mask_records_per_user_with_notes(store: LabelStore) -> None:
    a1, a2, b1 = (np.eye(3, dtype=bool), np.ones((3, 3), bool), np.zeros((3, 3), bool))
    store.save_mask("c1", "session", a1, who="alice", note='{"pos": 1}')
    store.save_mask("c1", "session", b1, who="bob", note='{"pos": 0}')
    store.save_mask("c1", "session", a2, who="alice", note='{"pos": 2}')
    store.save_mask("c2", "session", a1, who="bob")
    rec = store.latest_mask_record("c1", "session", who="alice")
    assert np.array_equal(rec.mask, a2) and rec.note == '{"pos": 2}' and rec.who == "alice" and rec.when.endswith("Z")
    assert np.array_equal(store.latest_mask("c1", "session", who="bob"), b1)
    assert np.array_equal(store.latest_mask("c1", "session"), a2)  # anyone's latest
    assert store.latest_mask_record("c1", "session", who="carol") is None
    assert list(store.latest_masks("session", who="bob")) == ["c1", "c2"]
    assert list(store.latest_masks("session", who="alice")) == ["c1"]
    assert store.latest_masks("session")["c1"].who == "alice"
    assert store.latest_masks("final") == {}
