"""Volume context: the slices around a 2D slice (NeighbourSlices), the contract's predict_case, the few-shot
learner's stacked localiser probability, and the loops that pass neighbours (segment, bench, app)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarceseg.datasets.slices import NeighbourSlices, slice_case, stack_position
from scarceseg.io.case import Case
from scarceseg.methods.contract import Prediction, Segmenter, predict_case
from scarceseg.methods.prior_fewshot import FewShotConfig, PriorFewShot


def lgg_folder(root, slices=(3, 4, 5, 7), patient="TCGA_XX_0001_20000101"):
    """A tiny LGG-layout folder: one patient, the given slice numbers (slice 6 missing), slice n's image = n."""
    import tifffile

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for n in slices:
        image = np.full((256, 256, 3), n, dtype=np.uint8)
        image[100:120, 100:120] = 200
        mask = np.zeros((256, 256, 3), dtype=np.uint8)
        mask[100:120, 100:120] = 255
        tifffile.imwrite(root / "images" / f"{patient}_{n}.tif", image)
        tifffile.imwrite(root / "masks" / f"{patient}_{n}_mask.tif", mask)
    return root


def test_neighbours_of_an_lgg_folder_follow_slice_numbers_and_gaps(tmp_path):
    from scarceseg.datasets import open_dataset

    ds = open_dataset(lgg_folder(tmp_path / "d"))
    case = ds.load("TCGA_XX_0001_20000101_5")
    assert stack_position(case) == ("TCGA_XX_0001_20000101", 5)
    near = NeighbourSlices.of_dataset(ds)(case, 2)
    assert {o: c.case_id.rsplit("_", 1)[1] for o, c in near.items()} == {-2: "3", -1: "4", 2: "7"}  # 6 is missing
    assert NeighbourSlices.of_dataset(ds)(case, 0) == {}
    only = NeighbourSlices.of_dataset(ds, only=lambda cid: not cid.endswith("_4"))(case, 1)
    assert only == {}


def test_neighbours_of_a_volume_and_a_lone_image():
    image = np.arange(5, dtype=np.float32)[None, :, None, None] * np.ones((1, 5, 4, 4), dtype=np.float32)
    volume = Case(image=image, spacing=(1.0, 1.0, 1.0), case_id="v")
    near = NeighbourSlices.of_volume(volume)(slice_case(volume, 0), 2)
    assert sorted(near) == [1, 2] and float(near[2].image[0, 0, 0]) == 2.0
    assert stack_position(slice_case(volume, 3)) == ("v/0", 3)
    assert stack_position(Case(image=np.zeros((1, 4, 4)), spacing=(1.0, 1.0), case_id="x")) is None


class Recorder(Segmenter):
    """Predicts the image's mean as every pixel; records which neighbours it was given."""

    name = "recorder-for-tests"

    def __init__(self, k: int) -> None:
        super().__init__({})
        self.context_slices = k
        self.seen: list[list[int]] = []

    def fit(self, cases, budget=None, progress=False, seed=0):
        return {}

    def predict(self, case):
        self.seen.append([])
        return Prediction(np.zeros(case.shape), np.zeros(case.shape, bool))

    def predict_in_stack(self, case, neighbours):
        self.seen.append(sorted(neighbours))
        return Prediction(np.zeros(case.shape), np.zeros(case.shape, bool))

    def save_files(self, folder):
        pass

    @classmethod
    def load_files(cls, folder, config):
        return cls(1)


def test_predict_case_gives_neighbours_only_to_a_model_that_reads_them():
    image = np.zeros((1, 3, 4, 4), dtype=np.float32)
    volume = Case(image=image, spacing=(1.0, 1.0, 1.0), case_id="v")
    near = NeighbourSlices.of_volume(volume)
    reads, alone = Recorder(1), Recorder(0)
    predict_case(reads, slice_case(volume, 0), near)
    predict_case(alone, slice_case(volume, 1), near)
    predict_case(reads, slice_case(volume, 1), None)
    assert reads.seen == [[1], []] and alone.seen == [[]]


def test_segment_folder_passes_the_whole_folders_neighbours(tmp_path):
    from scarceseg.methods.folder import segment_folder

    data = lgg_folder(tmp_path / "d")
    model = Recorder(1)
    summary = segment_folder(model, data, tmp_path / "out", case_ids=["TCGA_XX_0001_20000101_4"], progress=False)
    assert len(summary["written"]) == 1
    assert model.seen == [[-1, 1]]  # slices 3 and 5 come from the folder, although only slice 4 is segmented


def fake_localiser(model: PriorFewShot, probs: dict[float, np.ndarray]) -> None:
    """The localiser's probability of an image is ``probs[image value at (0, 0)]`` (no prior needed)."""
    model._localise_cached = lambda image: probs[float(image[0, 0])]


def test_stack_probability_is_the_weighted_mean_of_the_slice_and_its_neighbours():
    model = PriorFewShot(FewShotConfig(context_weights=(0.5, 0.25, 0.125)))
    assert model.context == 2
    probs = {1.0: np.full((4, 4), 0.8), 2.0: np.full((4, 4), 0.4), 3.0: np.full((4, 4), 0.2)}
    fake_localiser(model, probs)
    lit = {v: np.pad(np.full((3, 3), v), ((0, 1), (0, 1)), constant_values=v + 0.5) for v in (2.0, 3.0)}
    got = model.stack_probability(probs[1.0], {-1: lit[2.0], 2: lit[3.0], 3: lit[2.0]})
    np.testing.assert_allclose(got, (0.5 * 0.8 + 0.25 * 0.4 + 0.125 * 0.2) / 0.875)  # offset 3 is out of reach
    flat = np.zeros((4, 4), dtype=np.float32)  # a neighbour without contrast (outside the body) counts as 0
    np.testing.assert_allclose(model.stack_probability(probs[1.0], {1: flat}), 0.5 * 0.8 / 0.75)
    np.testing.assert_allclose(model.stack_probability(probs[1.0], {1: np.zeros((2, 2))}), 0.8)  # other shape


def test_context_weights_are_checked_and_old_folders_read_slices_alone(tmp_path):
    with pytest.raises(ValueError, match="context_weights"):
        FewShotConfig(context_weights=(0.0, 1.0))
    with pytest.raises(ValueError, match="context_weights"):
        FewShotConfig(context_weights=(1.0, -0.5))
    assert PriorFewShot(FewShotConfig(context_weights=(1.0,))).context == 0
    assert FewShotConfig.from_dict({"context_weights": [0.5, 0.25]}).context_weights == (0.5, 0.25)


def test_a_folder_without_context_weights_loads_reading_slices_alone(prior, tmp_path):
    from scarceseg.methods.prior_fewshot import EmbeddingStore

    store = EmbeddingStore(prior, folder=tmp_path / "emb")
    rng = np.random.default_rng(0)
    image = (60 + 120 * np.pad(np.ones((10, 10)), 27) + rng.normal(0, 5, (64, 64))).astype(np.float32)
    model = PriorFewShot(FewShotConfig(steps=1, batch_size=1), store=store)
    model.fit([(image, image > 120)], seed=0)
    folder = model.save(tmp_path / "m")
    assert PriorFewShot.load(folder, store=store).context == 2
    info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del info["config"]["context_weights"]
    (folder / "config.json").write_text(json.dumps(info), encoding="utf-8")
    assert PriorFewShot.load(folder, store=store).context == 0


def test_largest_component_3d_keeps_the_biggest_26_connected_blob():
    from scarceseg.methods.prior_fewshot import largest_component_3d

    mask = np.zeros((4, 6, 6), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = True  # 3 voxels touching only at corners: one component
    mask[0, 5, 4:6] = True  # 2 voxels elsewhere
    kept = largest_component_3d(mask)
    assert kept.sum() == 3 and kept[2, 2, 2] and not kept[0, 5, 5]
    assert not largest_component_3d(np.zeros((2, 3, 3), dtype=bool)).any()


def test_a_volume_is_segmented_slice_by_slice_with_neighbours_then_finished(monkeypatch):
    from scarceseg.methods.prior_fewshot_method import PriorFewShotMethod

    method = PriorFewShotMethod({"volume_components": "largest", "context_weights": [0.5, 0.25]})
    seen = []

    def one(case, neighbours=None):  # slices 0-1 and 3: a blob each; slice 2: nothing
        z = case.meta["slice_index"]
        seen.append((z, sorted(neighbours or {})))
        mask = np.zeros(case.shape, dtype=bool)
        mask[1:3, 1:3] = z in (0, 1, 3)
        return Prediction(mask.astype(np.float32), mask, {})

    monkeypatch.setattr(method.model, "predict", one)
    volume = Case(image=np.ones((1, 4, 5, 5), dtype=np.float32), spacing=(1.0, 1.0, 1.0), case_id="v")
    out = method.predict(volume)
    assert seen == [(0, [1]), (1, [-1, 1]), (2, [-1, 1]), (3, [-1])]
    assert out.mask.shape == (4, 5, 5) and out.mask[:2].sum() == 8 and not out.mask[2:].any()
    assert out.prob[3].max() < 0.5  # dropped by the 3D rule: below the threshold, not zeroed
    method.model.config = FewShotConfig(volume_components="all")
    assert method.predict(volume).mask[3].sum() == 4


def test_segment_cohort_with_a_context_model_shares_a_temporary_embedding_cache(prior, tmp_path, monkeypatch):
    """`scarceseg segment --model` on a patient's slice files: the fewshot model reads the neighbours, the
    workers' embedding cache is a temporary folder removed at the end, and the masks are those of the in-process
    loop (segment_folder)."""
    import tempfile

    import scarceseg.prior.model as prior_model
    from scarceseg.bench.cohort import segment_cohort
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.folder import segment_folder
    from scarceseg.methods.prior_fewshot import EmbeddingStore, train_fewshot_from_dataset
    from scarceseg.methods.registry import load_model

    monkeypatch.setattr(prior_model, "_SHARED", prior)
    data = lgg_folder(tmp_path / "d", slices=(3, 4, 5))
    ids = open_dataset(data).case_ids
    train_fewshot_from_dataset(data, ids[:1], tmp_path / "m", FewShotConfig(steps=2, batch_size=1),
                               method_name="fewshot", progress=False)
    made = []
    real = tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    cohort = segment_cohort(tmp_path / "m", data, tmp_path / "out", workers=1, progress=False)
    assert len(cohort["written"]) == 3
    shared = [t for t in made if "scarceseg-embeddings-" in t.name]
    assert len(shared) == 1 and not __import__("os").path.exists(shared[0].name)  # removed at the end
    model = load_model(tmp_path / "m", kind="segmenter")
    assert model.context_slices == 2
    model.model.store = EmbeddingStore(prior)
    segment_folder(model, data, tmp_path / "out2", progress=False)
    from PIL import Image

    for cid in ids:
        a = np.asarray(Image.open(tmp_path / "out" / f"{cid}.png"))
        b = np.asarray(Image.open(tmp_path / "out2" / f"{cid}.png"))
        np.testing.assert_array_equal(a, b)
