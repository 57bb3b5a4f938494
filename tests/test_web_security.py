"""Hardening of the browser app (issue 16): no-follow writes, own-origin check, strict input, bounded queues,
busy port, a user data folder as the default WORKDIR, and NIfTI headers that keep the source's codes."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from scarceseg.cluster.propose import propose_case  # noqa: E402
from scarceseg.datasets import open_dataset  # noqa: E402
from scarceseg.datasets.sample import make_sample_data  # noqa: E402
from scarceseg.errors import InputError  # noqa: E402
from scarceseg.io import read_image, write_mask  # noqa: E402
from scarceseg.store import open_store  # noqa: E402
from scarceseg.store.proposals import save_proposal  # noqa: E402
from scarceseg.web.app import ServerConfig, create_app  # noqa: E402
from scarceseg.web.bench import free_port, lesion_point  # noqa: E402

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    """Two sample slices; the first proposed once into a base WORKDIR that tests copy."""
    root = tmp_path_factory.mktemp("websec")
    data = root / "sample"
    make_sample_data(data, n=2, seed=0)
    ds = open_dataset(data)
    base = root / "base_work"
    cid = ds.case_ids[0]
    save_proposal(propose_case(ds.load(cid), "fast"), base)
    return {"data": data, "base": base, "ids": ds.case_ids, "point": lesion_point(ds.load(cid).target)}


def work_copy(sample: dict, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(sample["base"], work)
    return work


def client(sample: dict, work: Path, **kw) -> TestClient:
    kw.setdefault("refiner", "mincut")  # no prior needed for these checks
    app = create_app(ServerConfig(folder=sample["data"], workdir=work, user=kw.pop("user", "alice"), **kw))
    return TestClient(app, base_url=LOCAL)


def png_folder(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((16, 16), 10 * i, np.uint8)).save(folder / f"img{i}.png")
    return folder


# ---- 1. writes never follow a symlink --------------------------------------------------------------------
def test_safe_writer_refuses_a_symlink_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    from scarceseg.io.safe_write import replacing, write_bytes

    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link"):
        write_bytes(folder / "link.txt", b"evil")
    with pytest.raises(InputError), replacing(folder / "link.txt") as tmp:
        tmp.write_bytes(b"evil")
    assert outside.read_text() == "keep" and (folder / "link.txt").is_symlink()
    write_bytes(folder / "a.txt", b"one")
    write_bytes(folder / "a.txt", b"two")  # replaces, atomically
    with pytest.raises(RuntimeError), replacing(folder / "b.txt") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert (folder / "a.txt").read_bytes() == b"two" and not (folder / "b.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "link.txt"]  # no temporary file left
    assert (folder / "a.txt").stat().st_mode & 0o644 == 0o644  # readable like a normally written file


def test_app_save_refuses_a_symlinked_mask_or_folder(sample: dict, tmp_path: Path) -> None:
    cid, (y, x) = sample["ids"][0], sample["point"]
    work = work_copy(sample, tmp_path)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"precious")
    (work / "masks" / "alice").mkdir(parents=True)
    (work / "masks" / "alice" / f"{cid}.png").symlink_to(outside)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (work / "masks" / "bob").symlink_to(elsewhere, target_is_directory=True)
    with client(sample, work) as c:
        assert c.post(f"/api/cases/{cid}/pick", json={"y": y, "x": x}).status_code == 200
        res = c.post(f"/api/cases/{cid}/save", json={})
        assert res.status_code == 400 and "symbolic link" in res.json()["detail"]
        assert str(tmp_path) not in res.text  # no absolute server path in the answer
        bob = {"X-Scarceseg-User": "bob"}
        assert c.post(f"/api/cases/{cid}/pick", json={"y": y, "x": x}, headers=bob).status_code == 200
        res = c.post(f"/api/cases/{cid}/save", json={}, headers=bob)
        assert res.status_code == 400 and "leads out of WORKDIR" in res.text and str(tmp_path) not in res.text
        shutil.rmtree(work / "proposals" / sample["ids"][1], ignore_errors=True)
        (work / "proposals" / sample["ids"][1]).symlink_to(elsewhere, target_is_directory=True)
        res = c.post(f"/api/cases/{sample['ids'][1]}/propose", json={})
        assert res.status_code == 400 and "leads out of WORKDIR" in res.text
    assert outside.read_bytes() == b"precious" and list(elsewhere.iterdir()) == []


def test_store_proposals_and_models_refuse_symlinks(sample: dict, tmp_path: Path) -> None:
    import torch

    from scarceseg.nets.checkpoint import save_checkpoint
    from scarceseg.store.proposals import load_proposal

    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"precious")
    work = tmp_path / "w1"
    work.mkdir()
    (work / "store.sqlite").symlink_to(outside)
    with pytest.raises(InputError):
        open_store(work)
    work2 = work_copy(sample, tmp_path)
    cid = sample["ids"][0]
    proposal = load_proposal(work2, cid)
    for name in ("proposal.npz", "contact_sheet.png"):
        target = work2 / "proposals" / cid / name
        target.unlink()
        target.symlink_to(outside)
        with pytest.raises(InputError):
            save_proposal(proposal, work2)
        target.unlink()
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.safetensors", "config.json"):
        (model / name).symlink_to(outside)
        with pytest.raises(InputError):
            save_checkpoint(model, torch.nn.Linear(2, 1), {"format": "x"})
        (model / name).unlink()
    assert outside.read_bytes() == b"precious"


def test_selector_save_refuses_a_symlink(tmp_path: Path) -> None:
    from scarceseg.methods.udc_rl import Selector, SelectorConfig
    from scarceseg.nets.dqn_cnn import DQNCNN

    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    folder = tmp_path / "selector"
    folder.mkdir()
    (folder / "config.json").symlink_to(outside)
    cfg = SelectorConfig(device="cpu")
    selector = Selector(DQNCNN(3, cfg.input_size, 2, cfg.channels, cfg.hidden, cfg.head), cfg, seed=0)
    with pytest.raises(InputError):
        selector.save(folder)
    assert outside.read_text() == "{}"


# ---- 2. only the app's own origin --------------------------------------------------------------------
def test_origin_must_be_the_apps_own(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    with client(sample, work_copy(sample, tmp_path)) as c:
        url = f"/api/cases/{cid}/undo"
        for bad in ["http://localhost:3000", "http://127.0.0.1:3000", "https://127.0.0.1:8765", "null",
                    "http://127.0.0.1", "http://evil.example:8765"]:
            res = c.post(url, json={}, headers={"Origin": bad})
            assert res.status_code == 403, bad
        assert c.post(url, json={}, headers={"Origin": LOCAL}).status_code == 409  # accepted: nothing to undo
        assert c.post(url, json={}).status_code == 409  # no Origin (not a browser): accepted
        local = TestClient(c.app, base_url="http://localhost:8765")
        assert local.post(url, json={}, headers={"Origin": "http://localhost:8765"}).status_code == 409
        assert local.post(url, json={}, headers={"Origin": LOCAL}).status_code == 403  # another origin
    token = "t" * 24
    with client(sample, work_copy(sample, tmp_path / "tok"), token=token) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.post(url, json={}, headers={**auth, "Origin": "http://127.0.0.1:3000"}).status_code == 403
        assert c.post(url, json={}, headers={**auth, "Origin": LOCAL}).status_code == 409


# ---- 3. strict input, no leaks ---------------------------------------------------------------------------
def test_coordinates_are_strict_integers_and_2d_cases_refuse_z(sample: dict, tmp_path: Path) -> None:
    cid, (y, x) = sample["ids"][0], sample["point"]
    with client(sample, work_copy(sample, tmp_path)) as c:
        url = f"/api/cases/{cid}/pick"
        for body in [{"y": str(y), "x": x}, {"y": y, "x": True}, {"y": float(y) + 0.5, "x": x},
                     {"y": y, "x": x, "z": "0"}]:
            assert c.post(url, json=body).status_code == 422, body
        assert c.post(f"/api/cases/{cid}/undo", json={"z": False}).status_code == 422
        for z in (0, 3):
            res = c.post(url, json={"y": y, "x": x, "z": z})
            assert res.status_code == 400 and "2D" in res.json()["detail"]
            assert c.get(f"/api/cases/{cid}/image.png?z={z}").status_code == 400
            assert c.get(f"/api/cases/{cid}/state?z={z}").status_code == 400
            assert c.post(f"/api/cases/{cid}/propose", json={"z": z}).status_code == 400
        assert c.post(url, json={"y": y, "x": x}).status_code == 200
        click = f"/api/cases/{cid}/click"
        for body in [{"y": y, "x": x, "positive": "false"}, {"y": y, "x": x, "positive": 0}]:
            assert c.post(click, json=body).status_code == 422, body
        assert c.post(click, json={"y": y, "x": x, "positive": False}).status_code == 200
        assert c.post("/api/train", json={"episodes": "5"}).status_code == 422


def test_error_bodies_hide_server_paths_and_do_not_echo_the_user(tmp_path: Path) -> None:
    folder = png_folder(tmp_path / "secret_place" / "files", 1)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    work = tmp_path / "secret_work"
    with TestClient(create_app(ServerConfig(folder=folder, workdir=work, user="u")), base_url=LOCAL) as c:
        res = c.get("/api/cases/broken/image.png")
        assert res.status_code == 400 and "broken.png" in res.json()["detail"]
        assert "secret_place" not in res.text and str(tmp_path) not in res.text
        res = c.post("/api/cases/broken/save", json={})
        assert res.status_code == 400 and "secret" not in res.text
        evil = "<script>alert(1)</script>"
        res = c.get("/api/info", headers={"X-Scarceseg-User": evil})
        assert res.status_code == 400 and "script" not in res.text and "user name" in res.json()["detail"]
        assert "secret" not in c.get("/api/info").text


def test_redact_keeps_paths_relative_and_cuts_other_absolute_paths() -> None:
    from scarceseg.web.security import redact

    roots = {"/srv/data/scans": "", "/home/u/.local/share/scarceseg/scans-1": "WORKDIR"}
    text = ("/srv/data/scans/a b.png: cannot decode (/usr/lib/libpng.so); "
            "/home/u/.local/share/scarceseg/scans-1/masks/u is a link; see http://127.0.0.1:8765/api/info; "
            r"C:\Users\u\x.nii.gz; /srv/data/scans")
    assert redact(text, roots) == ("a b.png: cannot decode (libpng.so); WORKDIR/masks/u is a link; "
                                   "see http://127.0.0.1:8765/api/info; x.nii.gz; .")


# ---- 4. bounded propose queue ----------------------------------------------------------------------------
def test_propose_queue_is_bounded_per_user_and_overall(tmp_path: Path, monkeypatch) -> None:
    import scarceseg.web.app as web_app

    release = threading.Event()
    ran: list[str] = []

    def blocking_work(catalog, workdir, case_id, z, config="fast", seed=0):
        def work(job):
            release.wait(30)
            ran.append(case_id)
            return {"key": case_id}

        return work

    monkeypatch.setattr(web_app, "propose_work", blocking_work)
    folder = png_folder(tmp_path / "files", 8)
    app = create_app(ServerConfig(folder=folder, workdir=tmp_path / "work", user="alice", queue_per_user=2,
                                  queue_total=3))
    try:
        with TestClient(app, base_url=LOCAL) as c:
            bob = {"X-Scarceseg-User": "bob"}
            carol = {"X-Scarceseg-User": "carol"}
            assert c.post("/api/cases/img0/propose", json={}).status_code == 200
            assert c.post("/api/cases/img1/propose", json={}).status_code == 200
            assert c.post("/api/cases/img1/propose", json={}).status_code == 200  # the same job again
            res = c.post("/api/cases/img2/propose", json={})
            assert res.status_code == 429 and "2 proposals" in res.json()["detail"]
            assert c.post("/api/cases/img3/propose", json={}, headers=bob).status_code == 200
            res = c.post("/api/cases/img4/propose", json={}, headers=carol)
            assert res.status_code == 429 and "3 proposals" in res.json()["detail"]
            assert "carol" not in res.text
            release.set()
            for _ in range(300):
                if len(ran) == 3:
                    break
                threading.Event().wait(0.05)
            assert sorted(ran) == ["img0", "img1", "img3"]
            for _ in range(100):  # the job's status turns "done" right after the work returns
                if c.post("/api/cases/img4/propose", json={}, headers=carol).status_code == 200:
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the queue did not free up")
    finally:
        release.set()


def test_finished_jobs_are_forgotten_beyond_a_limit(monkeypatch) -> None:
    import time

    from scarceseg.web import jobs as web_jobs

    monkeypatch.setattr(web_jobs, "KEEP_FINISHED", 2)
    manager = web_jobs.JobManager(max_per_user=1, max_total=1)
    try:
        ids = []
        for i in range(5):
            job = manager.submit("propose", lambda job: {"n": 1}, target=f"k{i}", user="u")
            ids.append(job.id)
            for _ in range(3000):  # a trivial job: waits only as long as the worker thread needs
                if job.status == "done":
                    break
                time.sleep(0.01)
            assert job.status == "done"
        assert [j.id for j in manager.all()] == ids[-3:]  # two finished ones kept, plus the newest
    finally:
        manager.shutdown()


# ---- 8. serve on a busy port -------------------------------------------------------------------------------
def test_serve_on_a_busy_port_says_so_and_exits_1(sample: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scarceseg.cli import app as cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = CliRunner().invoke(cli, ["serve", str(sample["data"]), "--port", str(port), "--user", "u",
                                       "--workdir", str(tmp_path / "w")])
    assert res.exit_code == 1, res.output
    assert f"port {port}" in res.output and "in use" in res.output and "--port" in res.output
    assert "serving" not in res.output and "Traceback" not in res.output


def test_serve_prints_the_address_once_the_socket_is_bound(sample: dict, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import scarceseg.web.app as web_app
    from scarceseg.cli import app as cli

    seen: dict = {}

    def fake_run(app, sock):
        seen.update(app=app, name=sock.getsockname())
        with socket.socket() as other:  # the port is really taken by now
            with pytest.raises(OSError):
                other.bind(("127.0.0.1", sock.getsockname()[1]))

    monkeypatch.setattr(web_app, "run_server", fake_run)
    port = free_port()
    res = CliRunner().invoke(cli, ["serve", str(sample["data"]), "--port", str(port), "--user", "u",
                                   "--workdir", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert seen["name"] == ("127.0.0.1", port) and f"open http://127.0.0.1:{port}/" in res.output


# ---- 14. a user data folder by default; read-only data --------------------------------------------------
def test_default_workdir_is_a_user_data_folder_keyed_by_the_path(tmp_path: Path, monkeypatch) -> None:
    from scarceseg.web.app import default_workdir

    home = tmp_path / "home"
    monkeypatch.setenv("SCARCESEG_DATA_HOME", str(home))
    a = png_folder(tmp_path / "one" / "scans", 2)
    b = png_folder(tmp_path / "two" / "scans", 2)
    before = sorted(p.name for p in a.iterdir())
    wa, wb = default_workdir(a), default_workdir(b)
    assert wa.parent == home and wa.name.startswith("scans-") and wa != wb and default_workdir(a) == wa
    app = create_app(ServerConfig(folder=a, user="u"))
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/api/cases").json()["n_cases"] == 2
    assert app.app.state.workdir == wa and (wa / "store.sqlite").is_file()
    assert sorted(p.name for p in a.iterdir()) == before  # nothing written into the data folder
    explicit = tmp_path / "mine"
    app = create_app(ServerConfig(folder=a, workdir=explicit, user="u"))
    assert app.app.state.workdir == explicit.resolve() and (explicit / "store.sqlite").is_file()


def test_read_only_data_folder_opens_and_saves_elsewhere(sample: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCARCESEG_DATA_HOME", str(tmp_path / "home"))
    data = tmp_path / "ro"
    shutil.copytree(sample["data"], data)
    cid, (y, x) = sample["ids"][0], sample["point"]
    listing = sorted(data.rglob("*"))
    modes = {}
    # (as root the modes do not stop a write: then "nothing written into the folder" is what is checked)
    for p in sorted(data.rglob("*"), reverse=True) + [data]:
        modes[p] = p.stat().st_mode
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        app = create_app(ServerConfig(folder=data, user="u"))
        save_proposal(propose_case(open_dataset(data).load(cid), "fast"), app.app.state.workdir)
        with TestClient(app, base_url=LOCAL) as c:
            assert c.get(f"/api/cases/{cid}/image.png").status_code == 200
            assert c.post(f"/api/cases/{cid}/pick", json={"y": y, "x": x}).status_code == 200
            saved = c.post(f"/api/cases/{cid}/save", json={}).json()["saved"]["file"]
        assert (app.app.state.workdir / saved).is_file()
        assert sorted(data.rglob("*")) == listing  # nothing written into the data folder
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


# ---- 16. NIfTI header codes -------------------------------------------------------------------------------
@pytest.mark.parametrize("codes", [(0, 2), (1, 4), (2, 0)])
def test_saved_nifti_keeps_the_source_qform_and_sform_codes(tmp_path: Path, codes: tuple[int, int]) -> None:
    import nibabel as nib

    affine = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), affine)
    img.set_qform(affine, code=codes[0])
    img.set_sform(affine, code=codes[1])
    nib.save(img, tmp_path / "vol.nii.gz")
    case = read_image(tmp_path / "vol.nii.gz")
    mask = np.zeros(case.shape, bool)
    mask[1, 2, 3] = True
    out = nib.load(write_mask(mask, tmp_path / "mask.nii.gz", like=case))
    src = nib.load(tmp_path / "vol.nii.gz")
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == codes
    assert np.allclose(out.affine, src.affine)
    assert np.array_equal(np.asarray(out.dataobj).T > 0, mask)


def test_saved_nifti_of_a_non_nifti_source_is_scanner_anatomical(tmp_path: Path) -> None:
    import nibabel as nib

    from scarceseg.io.case import Case

    case = Case(image=np.zeros((1, 3, 4, 5), np.float32), spacing=(2.0, 1.0, 1.0))
    out = nib.load(write_mask(np.zeros((3, 4, 5), bool), tmp_path / "m.nii.gz", like=case))
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 1)


def test_mask_written_over_an_existing_file_is_replaced_not_appended(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    write_mask(np.ones((4, 4), bool), path)
    write_mask(np.zeros((4, 4), bool), path)
    from scarceseg.io import read_mask

    assert not read_mask(path).any() and sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]
    with pytest.raises(InputError):
        (tmp_path / "l.png").symlink_to(path)
        write_mask(np.zeros((4, 4), bool), tmp_path / "l.png")


@pytest.mark.data
def test_saved_mask_of_a_brats_volume_keeps_its_header_codes(shared_data: Path, tmp_path: Path) -> None:
    import nibabel as nib

    folder = shared_data / "brats2015"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    case = open_dataset(folder).load(0)
    source = nib.load(case.meta["channel_files"][0] if "channel_files" in case.meta else case.source)
    assert (int(source.header["qform_code"]), int(source.header["sform_code"])) == (0, 2)  # as shipped
    out = nib.load(write_mask(case.target, tmp_path / "mask.nii.gz", like=case))
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (0, 2)
    assert np.allclose(out.affine, source.affine) and out.shape == source.shape
