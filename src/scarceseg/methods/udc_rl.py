"""Paper 000's second half: learn to pick the lesion among clustering candidates with a DQN.

Read top to bottom: :class:`SelectorConfig` (the paper's values), :func:`train_selector_arrays` (the
CleanRL-style loop: seeding, data, environment, network, memory, episodes), :class:`Selector` (score,
pick, save, load); :func:`scarceseg.methods.selector_method.segment_folder` proposes + picks on a new data
set, writing ``<case_id>.png``.
Training from a WORKDIR's picks (SQLite) is :func:`scarceseg.store.training.train_selector`: the trainer here
reads arrays, never the label store.

Choices and deviations (also in the README):

* **Environment.** ``mode="candidates"`` (default) shows one candidate in red per state and asks "is this
  the lesion?"; ``mode="paper"`` is section 0.4.1 literally (``M`` red / ``M^C`` green, a two-state
  environment that a network solves by always answering "M"). See :mod:`scarceseg.rl.env_mask_select`.
* **Epsilon-greedy** is the standard rule (random with probability epsilon); the paper's eq. 5 swaps the
  two cases (see :mod:`scarceseg.rl.dqn`).
* **Optimiser** Adam (the paper gives only the learning rate, MSE loss and batch size). No target
  network (the paper mentions none); ``target_update_every`` adds one.
* **State size** 96x96 instead of the image's own ~240x240, so that the paper's budget (300 episodes x 5
  steps, one batch-16 update per step) trains in about a minute on one CPU core. On LGG slices (10
  oracle-picked training slices, 40 test slices of other patients) 96 beat 64 (automatic Dice 0.35 vs
  0.26, two splits); 128 took ~2 min.
* **Network head.** ``head="pool"`` (global mean+max of the last feature map, then the dense layers)
  instead of Figure 5's flatten: with ten training images the flattened map gave each position its own
  weights and generalised worse (toy test selection 0.8 vs 1.0; LGG automatic Dice 0.21 vs 0.26 at 64x64).
  ``head="flatten"`` is Figure 5 literally.
* **Augmentation** (not in the paper): each training state is flipped / turned by a seeded random element
  of the square's 8 symmetries (``augment="dihedral"``); without it the network fitted the ten training
  slices and generalised worse (LGG automatic Dice 0.23 vs 0.24, one-click 0.36 vs 0.41 at 64x64).
* **Episode end.** The fifth step is terminal (no bootstrap past it).
* **Threads.** Training runs on ``threads=1`` torch thread (restored afterwards): on a shared 2-core
  machine two threads made each update 3-4x slower.
* **Use on a new image**, without ground truth: *automatic* scores every candidate by
  ``Q(lesion) - Q(not lesion)`` and returns the best (the paper's N_cl-action generalisation);
  *one-click* lets only the candidates containing the user's click compete. When even the best of them
  gets "not the lesion" (the paper's agent choosing ``M^C``), that candidate is still returned, with
  ``info["agent_says_not_lesion"] = True``: the complement of a candidate is never a lesion mask.

References
----------
.. [1] Stember & Shalu, paper 000 in ``shared/papers``, section 0.4 and Figures 5, 7, 8.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from scarceseg.configs import ConfigDict
from scarceseg.errors import CorruptFileError, InputError
from scarceseg.methods.contract import write_method_file
from scarceseg.nets.checkpoint import save_checkpoint
from scarceseg.nets.dqn_cnn import DQNCNN
from scarceseg.rl.dqn import dqn_update, epsilon_greedy, resolve_device, seed_everything, torch_threads
from scarceseg.rl.env_mask_select import (
    AUGMENTS,
    MODES,
    NEGATIVES,
    MaskSelectEnv,
    PreparedImage,
    prepare_image,
    render_candidates,
)
from scarceseg.rl.replay import ReplayBuffer
from scarceseg.rl.schedules import LinearSchedule

FORMAT = "scarceseg-udc-rl-selector"
SEGMENT_MODES = ("automatic", "one_click")


@dataclass
class SelectorConfig(ConfigDict):
    """Hyper-parameters of the DQN selector; defaults are paper 000's values where it gives them."""

    mode: str = "candidates"  # environment: "candidates" (ours, default) or "paper" (sec. 0.4.1 literally)
    n_episodes: int = 300  # sec. 0.4.4: N_episodes = 300
    steps_per_episode: int = 5  # sec. 0.4.1: five states per episode
    gamma: float = 0.99  # sec. 0.4.3: gamma = 0.99
    buffer_size: int = 1800  # sec. 0.4.4: N_memory = 1,800 rows
    batch_size: int = 16  # sec. 0.4.2: n_batch = 16
    learning_rate: float = 1e-4  # sec. 0.4.2: 1e-4 (Adam: the choice; the paper names no optimiser)
    epsilon_start: float = 0.7  # sec. 0.4.3: initial epsilon 0.7
    epsilon_decrement: float = 1e-4  # sec. 0.4.3: minus 1e-4 per episode
    epsilon_min: float = 1e-4  # sec. 0.4.3: epsilon_min = 1e-4
    input_size: int = 96  # deviation: states at 96x96 (paper: image size) for the 2-minute CPU budget
    channels: tuple[int, ...] = (32, 64, 64, 64)  # Fig. 5: four 3x3 stride-2 convs + ELU; widths not given
    hidden: int = 256  # Fig. 5: "fully connected layers"; width not given
    head: str = "pool"  # deviation: global mean+max before the dense layers; "flatten" = Fig. 5 literally
    alpha: float = 0.5  # overlay opacity of the red/green tint (not given)
    p_positive: float = 0.5  # candidates mode: share of states showing the lesion
    negatives: str = "uniform"  # candidates mode: "uniform" or "hard" (weighted by overlap with the lesion)
    positive_iou: float = 0.5  # candidates with IoU > this with the pick also count as the lesion
    augment: str = "dihedral"  # not in paper: seeded flips/quarter-turns of training states ("none", "flip")
    gamma_jitter: float = 0.0  # seeded random gamma exp(U(-g, g)) of the grey image in training states
    learning_starts: int = 16  # updates begin once the memory holds one batch
    updates_per_step: int = 1  # gradient steps per environment step
    target_update_every: int = 0  # 0 = no target network (paper); else copy every N steps
    eval_every: int = 20  # episodes between selection-accuracy evaluations (Figures 7-8); 0 = never
    channel: int | None = None  # image channel rendered in grey (None: the only one, or the mean)
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    threads: int | None = 1  # torch CPU threads while training (restored after); None = leave as is

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.mode not in MODES:
            raise ValueError(f"SelectorConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"SelectorConfig.negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"SelectorConfig.augment must be one of {AUGMENTS}, got {self.augment!r}")
        for name in ("n_episodes", "steps_per_episode", "buffer_size", "batch_size", "input_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SelectorConfig.{name} must be >= 1, got {getattr(self, name)}")



@dataclass
class TrainingHistory:
    """What happened during training, per episode and per evaluation (Figures 7-8 of the paper).

    ``accuracy[name][i]`` is the selection accuracy on set ``name`` (``"train"`` and any ``eval_sets``)
    after episode ``eval_episodes[i]``: the fraction of images whose best-scored candidate is a positive
    (the pick, or IoU > ``positive_iou`` with it). ``greedy_correct`` is, per episode, the fraction of the
    five states in which the greedy action was the rewarded one.
    """

    epsilon: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    greedy_correct: list[float] = field(default_factory=list)
    eval_episodes: list[int] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# ---- the selector -----------------------------------------------------------------------------------
class Selector:
    """A trained DQN that scores the candidate masks of an image.

    Parameters
    ----------
    net : DQNCNN
    config : SelectorConfig
    seed : int
    summary : dict, optional
        Training facts saved with the model (cases, seconds, accuracies, proposer config, ...).
    """

    def __init__(self, net: DQNCNN, config: SelectorConfig, seed: int = 0, summary: dict | None = None):
        self.net = net.eval()
        self.config = config
        self.seed = seed
        self.summary = dict(summary or {})

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def prepare(self, image: np.ndarray, masks: np.ndarray) -> PreparedImage:
        """Image ``(C, Y, X)`` or ``(Y, X)`` and candidates ``(K, Y, X)`` at state resolution."""
        return prepare_image(image, masks, self.config.input_size, channel=self.config.channel)

    @torch.no_grad()
    def score_prepared(self, prep: PreparedImage, chunk: int = 64) -> np.ndarray:
        """``Q(s_k, lesion) - Q(s_k, not lesion)`` for every candidate ``k``: ``(K,)`` float64."""
        states = render_candidates(prep, self.config.alpha)
        out = []
        for i in range(0, len(states), chunk):
            q = self.net(torch.from_numpy(states[i:i + chunk]).to(self.device))
            out.append((q[:, 0] - q[:, 1]).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Scores ``(K,)`` of the candidates ``masks`` ``(K, Y, X)`` of ``image``; higher = more lesion-like."""
        return self.score_prepared(self.prepare(image, masks))

    def select_automatic(self, image: np.ndarray, masks: np.ndarray) -> tuple[int, np.ndarray]:
        """The best-scored candidate: ``(index, scores)``. Raises ``ValueError`` without candidates."""
        if len(masks) == 0:
            raise ValueError("no candidate masks to choose from")
        scores = self.score(image, masks)
        return int(np.argmax(scores)), scores

    def select_one_click(self, image: np.ndarray, masks: np.ndarray, point: tuple[int, int]) -> tuple[int, dict]:
        """The best-scored candidate among those containing ``point`` ``(y, x)``.

        Returns
        -------
        index : int
        info : dict
            ``scores`` (all candidates), ``containing`` (indices holding the point), ``fallback`` (a reason
            when no candidate holds the point and the nearest one was used, else ``None``) and
            ``agent_says_not_lesion`` (the chosen candidate's score is negative: the agent would pick
            ``M^C``; the candidate is returned anyway, since a complement is not a lesion mask).
        """
        masks = np.asarray(masks, dtype=bool)
        if len(masks) == 0:
            raise ValueError("no candidate masks to choose from")
        y, x = (int(round(float(v))) for v in point)
        if not (0 <= y < masks.shape[1] and 0 <= x < masks.shape[2]):
            raise ValueError(f"click point {(y, x)} is outside the image {masks.shape[1:]}")
        scores = self.score(image, masks)
        containing = np.flatnonzero(masks[:, y, x])
        fallback = None
        if len(containing) == 0:
            from scipy.ndimage import distance_transform_edt

            dist = [distance_transform_edt(~m)[y, x] if m.any() else np.inf for m in masks]
            containing = np.array([int(np.argmin(dist))])
            fallback = "no candidate contains the click; the nearest candidate was used"
        best = int(containing[np.argmax(scores[containing])])
        info = {"scores": scores, "containing": containing.tolist(), "fallback": fallback,
                "agent_says_not_lesion": bool(scores[best] < 0)}
        return best, info

    # ---- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` and ``path/config.json``; returns the folder."""
        from scarceseg import __version__

        meta = {"format": FORMAT, "format_version": 1, "scarceseg_version": __version__,
                "config": asdict(self.config), "input_size": self.config.input_size,
                "in_channels": self.net.in_channels, "n_actions": self.net.n_actions,
                "seed": self.seed, "summary": self.summary}
        folder = save_checkpoint(path, self.net, meta)
        write_method_file(folder, "selector", "segmenter", {})
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Selector:
        """Read a folder written by :meth:`save`.

        Raises
        ------
        InputError
            The folder or one of its two files is missing.
        CorruptFileError
            ``config.json`` or ``model.safetensors`` does not decode or does not fit the network.
        """
        from safetensors.torch import load_file

        folder = Path(path)
        if not folder.is_dir():
            raise InputError(folder, "model folder does not exist" if not folder.exists() else "not a folder")
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                raise InputError(folder / name, "missing: not a selector model folder (train one with "
                                                "`scarceseg train selector`)")
        try:
            meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
            config = SelectorConfig.from_dict(meta["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(folder / "config.json", f"not a selector config: {exc}") from None
        config.device = device
        net = DQNCNN(meta.get("in_channels", 3), config.input_size, meta.get("n_actions", 2),
                     config.channels, config.hidden, config.head)
        try:
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
        except Exception as exc:  # safetensors raises its own error types on damaged files
            raise CorruptFileError(folder / "model.safetensors", f"cannot load the weights: {exc}") from None
        return cls(net.to(resolve_device(device)), config, meta.get("seed", 0), meta.get("summary"))



@torch.no_grad()
def selection_accuracy(net: DQNCNN, states: list[tuple[torch.Tensor, np.ndarray]]) -> float:
    """Fraction of images whose best-scored candidate is a positive; ``states`` = ``[(K,3,S,S), (K,) bool]``."""
    if not states:
        return float("nan")
    hits = [bool(pos[int(torch.argmax((q := net(s))[:, 0] - q[:, 1]))]) for s, pos in states]
    return float(np.mean(hits))


# ---- training ---------------------------------------------------------------------------------------
def train_selector_arrays(images: list[np.ndarray], candidate_masks_list: list[np.ndarray],
                          picked_index_list: list[int], config: SelectorConfig | None = None, seed: int = 0,
                          eval_sets: dict[str, tuple[list, list, list]] | None = None,
                          progress: bool = False) -> tuple[Selector, TrainingHistory]:
    """Train the DQN selector on images, their candidates and the user's picks.

    Parameters
    ----------
    images : list of ndarray, each (C, Y, X) or (Y, X)
    candidate_masks_list : list of ndarray, each (K_i, Y, X) bool
    picked_index_list : list of int
        The lesion candidate of each image.
    config : SelectorConfig, optional
    seed : int
        Same seed, same inputs, same device => identical weights (on CPU).
    eval_sets : dict, optional
        ``{name: (images, candidate_masks_list, picked_index_list)}`` evaluated every ``eval_every``
        episodes (e.g. validation and test sets for Figures 7-8).
    progress : bool

    Returns
    -------
    selector : Selector
    history : TrainingHistory
    """
    cfg = copy.deepcopy(config) if config is not None else SelectorConfig()
    if not (len(images) == len(candidate_masks_list) == len(picked_index_list)):
        raise ValueError("images, candidate_masks_list and picked_index_list differ in length")
    with torch_threads(cfg.threads):
        return _train(images, candidate_masks_list, picked_index_list, cfg, seed, eval_sets or {}, progress)


def _train(images, candidate_masks_list, picked_index_list, cfg: SelectorConfig, seed: int,
           eval_sets: dict, progress: bool) -> tuple[Selector, TrainingHistory]:
    """The DQN loop, top to bottom (CleanRL style); see :func:`train_selector_arrays`."""
    t0 = time.perf_counter()

    # seeding: torch's generator for the weights; separate numpy streams for environment, memory, actions
    seed_everything(seed)
    env_rng, buffer_rng, action_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    device = resolve_device(cfg.device)

    # data at state resolution, rendered once for evaluation
    def prepared(imgs, masks, picks):
        return [prepare_image(i, m, cfg.input_size, picked=int(k), positive_iou=cfg.positive_iou,
                              channel=cfg.channel) for i, m, k in zip(imgs, masks, picks, strict=True)]

    def rendered(preps):
        return [(torch.from_numpy(render_candidates(p, cfg.alpha)).to(device), p.positive) for p in preps]

    train = prepared(images, candidate_masks_list, picked_index_list)
    eval_states = {"train": rendered(train)} if cfg.eval_every else {}
    for name, (imgs, masks, picks) in eval_sets.items():
        eval_states[name] = rendered(prepared(imgs, masks, picks))

    # environment, network, optimiser, replay memory, exploration schedule
    env = MaskSelectEnv(train, cfg.mode, cfg.steps_per_episode, env_rng, cfg.p_positive, cfg.negatives,
                        cfg.alpha, cfg.augment, cfg.gamma_jitter)
    q_net = DQNCNN(3, cfg.input_size, 2, cfg.channels, cfg.hidden, cfg.head).to(device)
    target_net = copy.deepcopy(q_net) if cfg.target_update_every else None
    optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg.learning_rate)
    memory = ReplayBuffer(cfg.buffer_size, (3, cfg.input_size, cfg.input_size), np.uint8, device, buffer_rng)
    epsilon = LinearSchedule(cfg.epsilon_start, cfg.epsilon_min, cfg.epsilon_decrement)
    history = TrainingHistory(accuracy={name: [] for name in eval_states})

    from scarceseg.progress import track

    global_step = 0
    for episode in track(range(cfg.n_episodes), "training selector (DQN)", enabled=progress):
        eps = epsilon(episode)
        obs = env.reset()  # a random training image per episode (sec. 0.4.4)
        done, ep_return, n_correct, losses = False, 0.0, 0, []
        while not done:
            with torch.no_grad():
                q = q_net(torch.from_numpy(obs[None]).to(device))[0]
            action = epsilon_greedy(q, eps, action_rng)
            n_correct += int(torch.argmax(q)) == env.correct_action
            next_obs, reward, done, _ = env.step(action)
            memory.add(obs, action, reward, next_obs, done)
            obs, ep_return, global_step = next_obs, ep_return + reward, global_step + 1
            if len(memory) >= cfg.learning_starts:
                for _ in range(cfg.updates_per_step):
                    losses.append(dqn_update(q_net, optimizer, memory.sample(cfg.batch_size), cfg.gamma, target_net))
            if target_net is not None and global_step % cfg.target_update_every == 0:
                target_net.load_state_dict(q_net.state_dict())
        history.epsilon.append(eps)
        history.returns.append(ep_return)
        history.loss.append(float(np.mean(losses)) if losses else float("nan"))
        history.greedy_correct.append(n_correct / cfg.steps_per_episode)
        if cfg.eval_every and ((episode + 1) % cfg.eval_every == 0 or episode + 1 == cfg.n_episodes):
            history.eval_episodes.append(episode + 1)
            for name, states in eval_states.items():
                history.accuracy[name].append(selection_accuracy(q_net, states))

    history.seconds = time.perf_counter() - t0
    summary = {"n_images": len(train), "n_candidates": [len(p.masks) for p in train], "seconds": history.seconds,
               "final_accuracy": {k: v[-1] for k, v in history.accuracy.items() if v}}
    return Selector(q_net.eval(), cfg, seed, summary), history
