"""Chan-Vese as a loss: the unsupervised and semi-supervised ACWE ConvNet of paper 003 (Chen & Frey).

A recurrent ConvNet (:class:`scarceseg.nets.rcnn.RCNN`) maps an image ``g`` to scores ``f``; ``f > 0`` is
foreground. It is trained, without labels, to minimise the Chan-Vese energy of its own segmentation
(:func:`scarceseg.cluster.acwe.acwe_loss`, paper 003 eq. 2), so that at test time one forward pass
replaces the per-image level-set evolution. The four modes of paper 003 section 3:

====  ===================================================================================
mode  training
====  ===================================================================================
1     unsupervised: ``L_ACWE`` on every training image
2     mode 1, then fine-tuning with ``L_label`` (eq. 3) on 10 labelled images
3     mode 1, then fine-tuning with ``L_label`` on 80 labelled images
4     from scratch with ``L_ACWE + alpha * L_label`` (labels of every training image by default)
====  ===================================================================================

Decisions the paper leaves open (also in ``docs/acwe.md``):

* **Smooth Heaviside.** ``H(f) = sigmoid(f / eps)`` replaces the paper's hard ``f > 0`` inside the
  losses (``H(0) = 1/2``, so the decision rule is unchanged); Chan & Vese's arctan and the authors'
  clip are options (:data:`scarceseg.cluster.acwe.HEAVISIDES`). ``L_ACWE`` (and mode 4's sum) uses
  a sharp one, ``eps = 0.03`` (with ``eps = 1`` the soft energy barely moved in 4 epochs; 0.01-0.03
  gave the best LGG Dice). Fine-tuning (modes 2, 3) uses a wide one, ``label_eps = 1``: the region
  term of ``L_label`` is linear in ``H``, so with a sharp ``H`` a confidently wrong pixel gets no
  gradient, and fine-tuning on 80 labels collapsed to empty masks (benchmark test Dice of mode 3,
  LGG / LA: 0.46 / 0.32 with 0.03 and 150 steps, 0.34 / 0.66 with 0.3 and 400 steps, 0.50 / 0.68 with
  1 and 400 steps). The price: on 10 LGG labels a wide ``H`` under-segments the small lesions (mode 2:
  0.45, 0.44, 0.37).
* **Region of interest and input.** Every image goes through :func:`scarceseg.preprocess.roi.prepare`:
  a label-free region of interest (inside the brain for LGG FLAIR, the central box for the LA 2018
  crops), an intensity window computed inside it, and a ``size x size`` grid over its bounding box.
  The energy is summed inside the ROI only; masks are mapped back to the image and cut to the ROI.
  The scikit-image baselines get the same grid image and the same ROI
  (:func:`scarceseg.cluster.acwe.classical_acwe`).
* **Which phase is foreground in mode 1.** The energy does not say (apart from the small area
  term). After mode-1 training, each training image votes for the phase ``f > 0`` or ``f <= 0`` whose
  mean intensity in the ROI is brighter (``foreground="bright"``, hyperintense FLAIR lesion, bright
  atrial blood pool). When the majority says ``f <= 0``, the last layer is rewritten exactly so that
  the sign of ``f`` flips (:func:`scarceseg.nets.rcnn.negate_output`); foreground is then ``f > 0``
  on the PReLU's linear branch, which fine-tuning needs. (Only if the last PReLU slope is <= 0, where
  no such rewrite exists, the model keeps ``polarity = -1`` and reads scores as ``polarity * f``.)
  Modes 2 and 3 fine-tune ``H(polarity * f)`` towards the labels; mode 4 has ``polarity = +1`` (the
  label term defines the inside).
* **Loss scale.** Both losses are per ROI pixel (mean, not sum) and averaged over the batch.
* **Fine-tuning** updates every layer with ``L_label`` alone (paper: "fine-tuning using L_label"),
  Adam at the same learning rate, for ``max(finetune_steps, finetune_epochs`` passes over the labels
  ``)`` steps; the authors' code froze the first block.
* **Length term of ``L_label``** weighted ``length_weight * size / 192``: the balance of contour length
  and region error that the paper has on its 192 x 192 grid (see :meth:`ACWESegmenter.label_length_weight`).
* **Budget.** :class:`ACWEConfig` defaults are the paper's and the authors' code's values (192 x 192,
  batch 20, 160 epochs, 800 fine-tuning steps): days on a CPU. :meth:`ACWEConfig.cpu` is the budget
  this project runs on two CPU cores (64 x 64, batch 8, see its docstring).

Reproducibility: :meth:`ACWESegmenter.fit` seeds the initialisation inside
:func:`torch.random.fork_rng` (the caller's global RNG is left alone), draws batch orders from
``numpy.random.default_rng(seed)`` and enables :func:`torch.use_deterministic_algorithms`: on CPU the same
seed gives the same weights.

References
----------
.. [1] J. Chen and E. C. Frey, "An unsupervised learning model for medical image segmentation"
   (paper 003 in ``shared/papers``), MIDL 2020 short paper.
.. [2] T. F. Chan and L. A. Vese, "Active contours without edges", IEEE TIP 10(2), 2001.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from scarceseg.cluster.acwe import acwe_loss, heaviside, label_loss
from scarceseg.errors import InputError, ShapeMismatchError
from scarceseg.methods.acwe_config import MODES, PAPER_SIZE, ACWEConfig
from scarceseg.methods.contract import write_method_file
from scarceseg.nets.checkpoint import load_weights, read_checkpoint_info, save_checkpoint
from scarceseg.nets.rcnn import RCNN, negate_output
from scarceseg.nets.runtime import deterministic, resolve_device
from scarceseg.preprocess.roi import RoiInput, prepare, to_image_grid, to_input_grid

FORMAT = "scarceseg.acwe"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ACWESegmenter:
    """The ACWE ConvNet: fit in one of paper 003's four modes, predict masks, save and load.

    Parameters
    ----------
    config : ACWEConfig, optional
        Paper defaults; :meth:`ACWEConfig.cpu` for a CPU budget.
    device : str
        ``"cpu"`` (default, bit-reproducible), ``"cuda"`` or ``"auto"``.

    Attributes
    ----------
    net : RCNN or None
    polarity : int
        +1: foreground is ``f > 0``; -1: ``f < 0`` (mode 1 picked the other phase, see the module docstring).
    mode : int or None
    meta : dict
        Saved with the weights (training case ids, labelled ids, seed, ...).
    """

    def __init__(self, config: ACWEConfig | None = None, device: str = "cpu") -> None:
        self.config = config or ACWEConfig()
        self.device = resolve_device(device)
        self.net: RCNN | None = None
        self.polarity = 1
        self.mode: int | None = None
        self.meta: dict = {}

    # ---- input ---------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> RoiInput:
        """ROI, window and grid of one 2D image ``(Y, X)`` (see :func:`scarceseg.preprocess.roi.prepare`)."""
        c = self.config
        return prepare(image, size=c.size, roi=c.roi, window=c.window, rim=c.rim, centre_fraction=c.centre_fraction)

    def _build(self) -> RCNN:
        c = self.config
        return RCNN(1, width=c.width, n_recurrent=c.n_recurrent, steps=c.steps).to(self.device)

    def _tensors(self, preps: Sequence[RoiInput]) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.size
        for p in preps:
            if p.x.shape != (size, size):
                raise ShapeMismatchError(None, f"prepared image of shape {p.x.shape}, the model needs {size}x{size}")
        x = torch.from_numpy(np.stack([p.x for p in preps])[:, None].astype(np.float32))
        roi = torch.from_numpy(np.stack([p.roi for p in preps])[:, None].astype(np.float32))
        return x, roi

    # ---- training ------------------------------------------------------------------------------------
    def fit(
        self,
        images: Sequence[np.ndarray | RoiInput],
        masks: Sequence[np.ndarray | None] | None = None,
        mode: int = 1,
        seed: int = 0,
        pretrained: ACWESegmenter | None = None,
        progress: bool = False,
    ) -> dict:
        """Train in one of paper 003's modes.

        Parameters
        ----------
        images : sequence of ndarray (Y, X) or RoiInput
            Training images (one channel each), or already prepared ones.
        masks : sequence of (ndarray (Y, X) or None), optional
            Aligned with ``images``; ``None`` for an unlabelled image. Mode 1 ignores them; modes 2 and 3
            fine-tune on every given mask (the caller chooses 10 or 80, see
            :func:`scarceseg.methods.acwe_data.choose_labelled`);
            mode 4 adds the label loss on every given mask.
        mode : {1, 2, 3, 4}
        seed : int
        pretrained : ACWESegmenter, optional
            Modes 2 and 3: a mode-1 model to fine-tune (its weights are copied); without it, mode 1 is
            trained first on ``images``.
        progress : bool

        Returns
        -------
        dict
            ``stages`` (per stage: name, loss per epoch or per 10 steps, steps, seconds), ``polarity``,
            ``seconds``, ``n_images``, ``n_labels``, ``seed``.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        preps = [p if isinstance(p, RoiInput) else self.prepare(p) for p in images]
        if not preps:
            raise ValueError("need at least one training image")
        masks = list(masks) if masks is not None else [None] * len(preps)
        if len(masks) != len(preps):
            raise ValueError(f"{len(masks)} masks for {len(preps)} images")
        targets = np.zeros((len(preps), 1, self.config.size, self.config.size), dtype=np.float32)
        labelled = np.zeros(len(preps), dtype=bool)
        for i, (p, m) in enumerate(zip(preps, masks, strict=True)):
            if m is not None:
                targets[i, 0] = to_input_grid(m, p)
                labelled[i] = True
        if mode in (2, 3, 4) and not labelled.any() and not (mode == 4 and self.config.alpha == 0):
            raise ValueError(f"mode {mode} needs labelled images (masks), none were given")
        x, roi = self._tensors(preps)
        u = torch.from_numpy(targets)
        rng = np.random.default_rng(seed)
        history: dict = {"stages": [], "seed": seed, "n_images": len(preps), "n_labels": int(labelled.sum())}
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]), deterministic():
            torch.manual_seed(seed)
            if mode in (2, 3) and pretrained is not None:
                if pretrained.net is None:
                    raise ValueError("the pretrained model is not trained")
                net, self.polarity = copy.deepcopy(pretrained.net).to(self.device), pretrained.polarity
                history["pretrained"] = dict(pretrained.meta)
            else:
                net = self._build()
                self.polarity = 1
                epochs_steps = self.config.epochs * max(1, -(-len(preps) // self.config.batch_size))
                use_label = mode == 4 and self.config.alpha > 0
                self._run(net, x, roi, u, labelled if use_label else None, np.arange(len(preps)), epochs_steps,
                          "acwe+label" if use_label else "acwe", rng, history, progress)
                if mode != 4:
                    self.polarity = self._decide_polarity(net, x, roi)
                    if self.polarity == -1 and negate_output(net):
                        self.polarity = 1
            if mode in (2, 3):
                pool = np.flatnonzero(labelled)
                c = self.config
                steps = max(c.finetune_steps, c.finetune_epochs * -(-len(pool) // c.batch_size))
                self._run(net, x, roi, u, labelled, pool, steps, "label", rng, history, progress)
        net.eval()
        self.net, self.mode = net, mode
        history["seconds"] = time.perf_counter() - t0
        history["polarity"] = self.polarity
        self.meta.update(mode=mode, seed=seed, n_images=len(preps), n_labels=int(labelled.sum()),
                         polarity=self.polarity)
        return history

    def label_length_weight(self) -> float:
        """Weight of the length term of ``L_label`` on this grid: ``length_weight * size / 192``.

        A contour's length in pixels grows with the grid side, its area with the side squared; scaling
        by ``size / 192`` keeps the balance of length and region terms that the paper has on its
        192 x 192 grid. (Unscaled, on a 64 x 64 grid the length term shrank LGG lesions: fine-tuning on
        10 labels fell from Dice 0.44 to 0.39.)
        """
        return self.config.length_weight * self.config.size / PAPER_SIZE

    def _run(self, net: RCNN, x: torch.Tensor, roi: torch.Tensor, u: torch.Tensor, labelled: np.ndarray | None,
             pool: np.ndarray, n_steps: int, loss_name: str, rng: np.random.Generator, history: dict,
             progress: bool) -> None:
        """``n_steps`` Adam steps on batches drawn from ``pool`` (a fresh permutation each pass)."""
        from scarceseg.progress import track

        c = self.config
        lw = self.label_length_weight()
        opt = torch.optim.Adam(net.parameters(), lr=c.lr)
        net.train()
        per_epoch = max(1, -(-len(pool) // c.batch_size))
        losses: list[float] = []
        chunk: list[float] = []
        order: list[int] = []
        t0 = time.perf_counter()
        for step in track(range(n_steps), description=f"training ACWE ConvNet ({loss_name})", enabled=progress):
            if len(order) == 0:
                order = list(rng.permutation(pool))
            idx = np.asarray(order[: c.batch_size])
            order = order[c.batch_size :]
            xb, rb, ub = x[idx].to(self.device), roi[idx].to(self.device), u[idx].to(self.device)
            f = net(xb)
            if loss_name == "label":
                loss = label_loss(self.polarity * f, ub, rb, kind=c.heaviside, eps=c.label_eps, length_weight=lw)
            else:
                loss = acwe_loss(f, xb, rb, nu=c.nu, lambda1=c.lambda1, lambda2=c.lambda2, mu=c.mu,
                                 kind=c.heaviside, eps=c.eps)
                if labelled is not None and labelled[idx].any():
                    sel = torch.from_numpy(labelled[idx])
                    # mode 4: one H shared by both terms (a wide label_eps here let L_ACWE pick the dark
                    # phase as inside on LGG: test Dice 0.04 instead of 0.52)
                    loss = loss + c.alpha * label_loss(f[sel], ub[sel], rb[sel], kind=c.heaviside, eps=c.eps,
                                                       length_weight=lw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            chunk.append(float(loss.detach()))
            if len(chunk) == per_epoch or step == n_steps - 1:
                losses.append(float(np.mean(chunk)))
                chunk = []
        history["stages"].append({"loss": loss_name, "steps": n_steps, "steps_per_point": per_epoch,
                                  "curve": losses, "seconds": time.perf_counter() - t0})

    def _forward(self, net: RCNN, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
        net.eval()
        with torch.inference_mode():
            return torch.cat([net(x[i : i + batch].to(self.device)).cpu() for i in range(0, len(x), batch)])

    def _decide_polarity(self, net: RCNN, x: torch.Tensor, roi: torch.Tensor) -> int:
        """+1 if ``f > 0`` is the brighter phase (for ``foreground="bright"``) on most training images."""
        f = self._forward(net, x)[:, 0].numpy()
        xs, rs = x[:, 0].numpy(), roi[:, 0].numpy() > 0
        votes = []
        for fi, xi, ri in zip(f, xs, rs, strict=True):
            inside, outside = (fi > 0) & ri, (fi <= 0) & ri
            if inside.any() and outside.any():
                votes.append(xi[inside].mean() > xi[outside].mean())
        brighter = float(np.mean(votes)) if votes else 1.0
        positive_is_bright = brighter >= 0.5
        return 1 if positive_is_bright == (self.config.foreground == "bright") else -1

    # ---- inference -----------------------------------------------------------------------------------
    def _require_net(self) -> RCNN:
        if self.net is None:
            raise RuntimeError("the ACWE ConvNet is not trained: call fit() or load() first")
        return self.net

    def scores(self, preps: Sequence[RoiInput], batch: int = 64) -> np.ndarray:
        """Foreground scores ``polarity * f`` on the grid, ``(N, S, S)`` float32; ``> 0`` is foreground."""
        net = self._require_net()
        if not preps:
            return np.zeros((0, self.config.size, self.config.size), dtype=np.float32)
        x, _ = self._tensors(preps)
        return (self.polarity * self._forward(net, x, batch)[:, 0]).numpy().astype(np.float32)

    def predict_prepared(self, preps: Sequence[RoiInput]) -> list[np.ndarray]:
        """Full-size masks ``(Y, X)`` bool of prepared images (ROI only)."""
        return [to_image_grid(s, p) for s, p in zip(self.scores(preps), preps, strict=True)]

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Foreground probability and mask of one 2D image.

        Parameters
        ----------
        image : ndarray, shape (Y, X)
            One channel, raw intensities.

        Returns
        -------
        prob : ndarray of float32, shape (Y, X)
            ``H(polarity * f)`` up-sampled into the ROI's box, 0 outside the ROI.
        mask : ndarray of bool, shape (Y, X)
            ``polarity * f > 0`` inside the ROI (the paper's rule), up-sampled.
        """
        from skimage.transform import resize

        prep = self.prepare(image)
        s = self.scores([prep])[0]
        y0, y1, x0, x1 = prep.box
        up = resize(s.astype(np.float64), (y1 - y0, x1 - x0), order=1, preserve_range=True)
        prob = np.zeros(prep.shape, dtype=np.float32)
        h = heaviside(torch.from_numpy(up), self.config.heaviside, self.config.eps).numpy()
        prob[y0:y1, x0:x1] = h
        prob[~prep.full_roi] = 0.0
        mask = np.zeros(prep.shape, dtype=bool)
        mask[y0:y1, x0:x1] = up > 0
        return prob, mask & prep.full_roi

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` and ``path/config.json``; returns the folder."""
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "mode": self.mode, "polarity": self.polarity,
                "config": self.config.to_dict(), "meta": self.meta}
        folder = save_checkpoint(path, self._require_net(), info, WEIGHTS_FILE, CONFIG_FILE)
        write_method_file(folder, "acwe", "segmenter", {"mode": self.mode or 1})
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> ACWESegmenter:
        """Read a folder written by :meth:`save`.

        Raises
        ------
        InputError
            Missing files, a config of another format, or weights that do not fit the network.
        """
        info, w_path = read_checkpoint_info(path, FORMAT, "an ACWE model folder written by `scarceseg train acwe`",
                                            "an ACWE model", WEIGHTS_FILE, CONFIG_FILE)
        try:
            model = cls(ACWEConfig.from_dict(info["config"]), device=device)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(Path(path) / CONFIG_FILE, f"bad ACWE config ({exc})") from exc
        model.polarity = int(info.get("polarity", 1))
        model.mode = info.get("mode")
        model.meta = dict(info.get("meta", {}))
        net = model._build()
        load_weights(net, w_path, "the ACWE ConvNet")
        model.net = net.eval()
        return model
