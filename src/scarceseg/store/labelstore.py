"""The label store: an SQLite file inside WORKDIR that keeps every pick, click and mask with who/when.

The store is append-only: picking a case again adds a row, it never overwrites one, so the full
history of a case survives re-running ``propose`` and re-picking. The latest row wins
(:meth:`LabelStore.current_picks`). Every write is one ``BEGIN IMMEDIATE`` transaction in WAL mode with a
busy timeout, so two processes can use the same file one after another or at the same time.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    meta   (key TEXT PK, value TEXT)                      created_at, schema_version
    picks  (id INTEGER PK, case_id, candidate INTEGER NULL, point_y, point_x INTEGER NULL, who,
            created_at TEXT ISO-8601 UTC, oracle INTEGER 0/1, proposal_id TEXT,
            mask BLOB NULL (np.packbits, C order), mask_shape TEXT NULL (JSON list), note TEXT)
    clicks (id INTEGER PK, case_id, session, y, x, z INTEGER NULL, positive INTEGER 0/1, who, created_at)
    masks  (id INTEGER PK, case_id, kind, mask BLOB, mask_shape TEXT, who, created_at, note)

The rows come back as the values of :mod:`scarceseg.store.records` (:class:`Pick`, :class:`Click`,
:class:`MaskRecord`), which also packs masks into rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.store.records import Click, MaskRecord, Pick, as_point, int_or_none, pack_mask, unpack_mask, utc_now

SCHEMA_VERSION = 1
STORE_NAME = "store.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS picks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, candidate INTEGER,
    point_y INTEGER, point_x INTEGER, who TEXT NOT NULL, created_at TEXT NOT NULL,
    oracle INTEGER NOT NULL DEFAULT 0 CHECK (oracle IN (0, 1)), proposal_id TEXT NOT NULL DEFAULT '',
    mask BLOB, mask_shape TEXT, note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS picks_case ON picks (case_id, id);
CREATE TABLE IF NOT EXISTS clicks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, session TEXT NOT NULL DEFAULT '',
    y INTEGER NOT NULL, x INTEGER NOT NULL, z INTEGER, positive INTEGER NOT NULL CHECK (positive IN (0, 1)),
    who TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS clicks_case ON clicks (case_id, session, id);
CREATE TABLE IF NOT EXISTS masks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, kind TEXT NOT NULL, mask BLOB NOT NULL,
    mask_shape TEXT NOT NULL, who TEXT NOT NULL, created_at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS masks_case ON masks (case_id, kind, id);
"""


class LabelStore:
    """Picks, clicks and masks of one WORKDIR in an SQLite file (created on first open).

    Parameters
    ----------
    path : str or Path
        The SQLite file, usually ``WORKDIR/store.sqlite`` (see :func:`open_store`).
    timeout : float
        Seconds to wait for another process holding the write lock before giving up.

    Raises
    ------
    InputError
        The file is not an SQLite database, is locked for longer than ``timeout``, or was written by a
        newer scarceseg (schema version above :data:`SCHEMA_VERSION`).

    Examples
    --------
    >>> with LabelStore(tmp / "store.sqlite") as store:  # doctest: +SKIP
    ...     store.add_pick("case1", 3, point=(120, 98), who="alice")
    """

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise InputError(self.path, f"cannot open the label store: {exc}") from None
        try:
            self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    # -- connection ---------------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """Turn sqlite errors into an InputError naming the file."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.ProgrammingError:
                raise  # misuse (e.g. a closed store), not a bad file
            except sqlite3.DatabaseError as exc:
                reason = str(exc)
                if "locked" in reason or "busy" in reason:
                    reason = f"the label store is locked by another process ({exc}); try again"
                elif "not a database" in reason or "malformed" in reason:
                    reason = f"not a scarceseg label store or corrupt ({exc}); move it aside to start a new one"
                else:
                    reason = f"label store error: {exc}"
                raise InputError(self.path, reason) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error)."""
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _init_schema(self) -> None:
        with self._guard() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError(
                    self.path,
                    f"label store schema version {version} is newer than this scarceseg's {SCHEMA_VERSION}; "
                    "upgrade scarceseg",
                )
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a COMMIT is on disk before a write method returns
        if version == SCHEMA_VERSION:
            return
        with self._write() as conn:
            # re-read inside the lock: another process may have created the schema meanwhile
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (utc_now(),))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # -- picks --------------------------------------------------------------------------------------

    def add_pick(
        self,
        case_id: str,
        candidate: int | None,
        point: tuple[int, int] | None = None,
        who: str = "user",
        oracle: bool = False,
        mask: np.ndarray | None = None,
        proposal_id: str = "",
        note: str = "",
    ) -> int:
        """Append a pick for ``case_id`` and return its id; earlier picks stay in the history.

        Parameters
        ----------
        case_id : str
        candidate : int or None
            Candidate index in the proposal identified by ``proposal_id``.
        point : (int, int) or None
            Fiducial point ``(y, x)`` inside the lesion.
        who : str
        oracle : bool
            Mark the pick as made by the oracle (never a person).
        mask : ndarray (Y, X) bool or None
            The picked mask, stored bit-packed.
        proposal_id : str
        note : str

        Returns
        -------
        int
            The new pick's id.
        """
        if not isinstance(case_id, str) or not case_id:
            raise ValueError(f"case_id must be a non-empty string, got {case_id!r}")
        candidate = int_or_none(candidate, "candidate")
        if candidate is not None and candidate < 0:
            raise ValueError(f"candidate must be >= 0, got {candidate}")
        pt = as_point(point)
        if candidate is None and pt is None and mask is None:
            raise ValueError("a pick needs a candidate, a point or a mask")
        blob, shape = pack_mask(mask) if mask is not None else (None, None)
        row = (case_id, candidate, *(pt or (None, None)), str(who), utc_now(), int(bool(oracle)),
               str(proposal_id), blob, shape, str(note))
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO picks (case_id, candidate, point_y, point_x, who, created_at, oracle, proposal_id,"
                " mask, mask_shape, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid)

    @staticmethod
    def _pick(row: sqlite3.Row | tuple) -> Pick:
        (pid, case_id, candidate, py, px, who, when, oracle, proposal_id, blob, shape, note) = row
        return Pick(
            id=pid,
            case_id=case_id,
            candidate=candidate,
            point=None if py is None else (py, px),
            who=who,
            when=when,
            oracle=bool(oracle),
            proposal_id=proposal_id,
            mask=None if blob is None else unpack_mask(blob, shape),
            note=note,
        )

    def _picks(self, where: str = "", args: tuple = ()) -> list[Pick]:
        sql = (
            "SELECT id, case_id, candidate, point_y, point_x, who, created_at, oracle, proposal_id, mask,"
            f" mask_shape, note FROM picks {where} ORDER BY id"
        )
        with self._guard() as conn:
            return [self._pick(r) for r in conn.execute(sql, args).fetchall()]

    def get_pick(self, pick_id: int) -> Pick:
        """The pick with this id (KeyError if there is none)."""
        found = self._picks("WHERE id = ?", (int(pick_id),))
        if not found:
            raise KeyError(f"no pick with id {pick_id} in {self.path}")
        return found[0]

    def current_picks(self, include_oracle: bool = True, oracle_only: bool = False) -> dict[str, Pick]:
        """The latest pick of every case, sorted by case id.

        Parameters
        ----------
        include_oracle : bool
            If False, oracle picks are ignored (the latest *human* pick per case; cases only the oracle
            picked are absent).
        oracle_only : bool
            If True, only oracle picks are considered.
        """
        cond = "WHERE oracle = 1" if oracle_only else ("" if include_oracle else "WHERE oracle = 0")
        picks = self._picks(f"WHERE id IN (SELECT MAX(id) FROM picks {cond} GROUP BY case_id)")
        return {p.case_id: p for p in sorted(picks, key=lambda p: p.case_id)}

    def history(self, case_id: str) -> list[Pick]:
        """Every pick of one case, oldest first (empty list if it was never picked)."""
        return self._picks("WHERE case_id = ?", (case_id,))

    def all_picks(self) -> list[Pick]:
        """Every pick of every case, oldest first."""
        return self._picks()

    # -- clicks and masks (interactive refinement) ----------------------------------------------------

    def add_click(
        self,
        case_id: str,
        y: int,
        x: int,
        positive: bool = True,
        z: int | None = None,
        session: str = "",
        who: str = "user",
    ) -> int:
        """Append one refinement click (``positive`` = inside the object) and return its id."""
        y, x, z = (int_or_none(v, n) for v, n in ((y, "y"), (x, "x"), (z, "z")))
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO clicks (case_id, session, y, x, z, positive, who, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (case_id, str(session), y, x, z, int(bool(positive)), str(who), utc_now()),
            )
            return int(cur.lastrowid)

    def _clicks(self, where: str = "", args: tuple = ()) -> list[Click]:
        sql = f"SELECT id, case_id, session, y, x, z, positive, who, created_at FROM clicks {where} ORDER BY id"
        with self._guard() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Click(*r[:6], bool(r[6]), *r[7:]) for r in rows]

    def clicks(self, case_id: str, session: str | None = None) -> list[Click]:
        """The clicks of a case (optionally of one session), oldest first."""
        if session is None:
            return self._clicks("WHERE case_id = ?", (case_id,))
        return self._clicks("WHERE case_id = ? AND session = ?", (case_id, session))

    def save_mask(self, case_id: str, kind: str, mask: np.ndarray, who: str = "user", note: str = "") -> int:
        """Append a mask of any shape under ``kind`` (e.g. ``"refined"``, ``"final"``) and return its id."""
        blob, shape = pack_mask(mask)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO masks (case_id, kind, mask, mask_shape, who, created_at, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (case_id, str(kind), blob, shape, str(who), utc_now(), str(note)),
            )
            return int(cur.lastrowid)

    def latest_mask(self, case_id: str, kind: str, who: str | None = None) -> np.ndarray | None:
        """The last mask saved for ``(case_id, kind)`` (by ``who`` when given), or None."""
        record = self.latest_mask_record(case_id, kind, who=who)
        return None if record is None else record.mask

    def latest_mask_record(self, case_id: str, kind: str, who: str | None = None) -> MaskRecord | None:
        """The last mask row of ``(case_id, kind)`` (by ``who`` when given) with its note, or None."""
        found = self._mask_records(
            "WHERE id = (SELECT MAX(id) FROM masks WHERE case_id = ? AND kind = ?"
            + ("" if who is None else " AND who = ?") + ")",
            (case_id, kind) if who is None else (case_id, kind, str(who)),
        )
        return found[0] if found else None

    def latest_masks(self, kind: str, who: str | None = None) -> dict[str, MaskRecord]:
        """The last mask row of every case under ``kind`` (by ``who`` when given), sorted by case id."""
        cond = "WHERE kind = ?" + ("" if who is None else " AND who = ?")
        args = (kind,) if who is None else (kind, str(who))
        rows = self._mask_records(f"WHERE id IN (SELECT MAX(id) FROM masks {cond} GROUP BY case_id)", args)
        return {r.case_id: r for r in sorted(rows, key=lambda r: r.case_id)}

    def _mask_records(self, where: str, args: tuple) -> list[MaskRecord]:
        sql = f"SELECT id, case_id, kind, mask, mask_shape, who, created_at, note FROM masks {where} ORDER BY id"
        with self._guard() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [MaskRecord(i, c, k, unpack_mask(b, s), w, t, n) for i, c, k, b, s, w, t, n in rows]

    # -- export -------------------------------------------------------------------------------------

    def export_json(self, path: str | Path) -> Path:
        """Write a human-readable dump of every pick, click and mask (masks as shape + area only).

        Returns
        -------
        Path
            The written file.
        """

        def pick_dict(p: Pick) -> dict:
            return {
                "id": p.id, "case_id": p.case_id, "candidate": p.candidate,
                "point": None if p.point is None else list(p.point), "who": p.who, "when": p.when,
                "oracle": p.oracle, "proposal_id": p.proposal_id, "note": p.note,
                "mask_shape": None if p.mask is None else list(p.mask.shape),
                "mask_area": None if p.mask is None else int(p.mask.sum()),
            }

        with self._guard() as conn:
            masks = conn.execute(
                "SELECT id, case_id, kind, mask, mask_shape, who, created_at, note FROM masks ORDER BY id"
            ).fetchall()
            created = conn.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
        picks = self.all_picks()
        dump = {
            "store": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "created_at": created[0] if created else None,
            "exported_at": utc_now(),
            "current": {c: p.id for c, p in self.current_picks().items()},
            "picks": [pick_dict(p) for p in picks],
            "clicks": [asdict(c) for c in self._clicks()],
            "masks": [
                {"id": i, "case_id": c, "kind": k, "shape": json.loads(s),
                 "area": int(unpack_mask(b, s).sum()), "who": w, "when": t, "note": n}
                for i, c, k, b, s, w, t, n in masks
            ],
        }
        from scarceseg.io.safe_write import write_text

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        return write_text(out, json.dumps(dump, indent=2) + "\n")


def open_store(workdir: str | Path, timeout: float = 30.0) -> LabelStore:
    """Open (creating if needed) the label store of a WORKDIR: ``WORKDIR/store.sqlite``.

    Parameters
    ----------
    workdir : str or Path
        The folder ``scarceseg propose`` writes; created if missing.
    timeout : float
        Seconds to wait for a lock held by another process.
    """
    from scarceseg.io.safe_write import refuse_symlinks

    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(workdir, "WORKDIR is a file, not a folder")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / STORE_NAME
    # SQLite follows a symlinked database (and journal) file: refuse one, as every other write does
    refuse_symlinks(path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")))
    return LabelStore(path, timeout=timeout)
