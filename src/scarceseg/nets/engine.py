"""The one training engine of the supervised methods: seeding, the loop with its budget, progress, checkpoints.

A method writes what one update (or one epoch) does as a function ``step(index, fraction) -> loss``; :func:`run`
calls it until the budget is spent (a number of steps, process CPU seconds, or both: whichever ends first),
reports progress (a rich bar and/or a callback), and writes a checkpoint every ``every`` steps and at the
end, from which :func:`load_state` resumes exactly. :func:`seeded` is the seeding block every trainer opens
(torch's global generator forked and seeded, threads, deterministic kernels), and :func:`cosine` the learning-
rate decay they share.

Why our own small engine and not MONAI's (ignite) or Lightning: the methods' loops are a few lines each but
differ in what a step is (an epoch of shuffled batches for the U-Net, a sampled batch of crops with simulated
clicks for the refiners, an episode of pixel agents for PixelDRL-MG), they stop on *process CPU seconds* (the
budgets of the papers' tables on a shared CPU), and their results must stay bit-identical for a seed. A loop
driver that calls the method's own step in the same order keeps every seeded figure of the README where it was;
ignite or Lightning would bring their own loop, sampler and callbacks order (and Lightning a new dependency)
for no feature we lack.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from scarceseg.nets.runtime import deterministic, torch_threads

STATE_WEIGHTS = "state.safetensors"
STATE_JSON = "state.json"


def cosine(fraction: float, scale: float = 1.0) -> float:
    """Cosine decay ``scale * 0.5 * (1 + cos(pi f))`` at ``fraction`` f of the budget (clipped to [0, 1]).

    ``scale`` is the base learning rate (or 1 for a factor); the product is evaluated left to right, as the
    trainers always did, so schedules stay bit-identical.
    """
    return scale * 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


@contextmanager
def seeded(seed: int, threads: int | None = None, exact: bool = True) -> Iterator[None]:
    """The seeding block of a training run: torch's global generator forked and seeded with ``seed`` (weights
    and dropout draw from it), ``threads`` torch threads, and deterministic kernels when ``exact``; all restored
    afterwards."""
    with torch.random.fork_rng(devices=[]), torch_threads(threads):
        torch.manual_seed(seed)
        if exact:
            with deterministic():
                yield
        else:
            yield


def run(
    step: Callable[[int, float], float],
    total: int | None,
    history: dict,
    cpu_seconds: float | None = None,
    description: str = "training",
    progress: bool = False,
    callback: Callable[[int, int | None, float], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    every: int = 50,
    stop_at: int | None = None,
) -> dict:
    """Call ``step`` until ``total`` steps or ``cpu_seconds`` of process CPU time, whichever comes first.

    Parameters
    ----------
    step : callable
        ``step(index, fraction) -> loss``: one update; ``fraction`` is the share of the budget spent (of the CPU
        seconds when they are given, else of the steps), for schedules.
    total : int or None
        Steps of the budget; ``None``: only ``cpu_seconds`` stops the loop.
    history : dict
        Updated in place: ``loss`` (per step), ``steps`` (done, counting resumed ones) and ``cpu_seconds``
        (spent, counting resumed runs). A resumed history continues where it stopped.
    cpu_seconds : float, optional
    description, progress :
        The rich progress bar (:func:`scarceseg.progress.track`; observers see it too).
    callback : callable, optional
        ``callback(steps_done, total, loss)`` after every step.
    checkpoint : callable, optional
        ``checkpoint(history)`` every ``every`` steps and at the end (e.g. :func:`save_state`).
    stop_at : int, optional
        Leave after this many steps as if interrupted (the schedule still follows ``total`` / ``cpu_seconds``).

    Returns
    -------
    dict
        ``history``.
    """
    from itertools import count

    from scarceseg.progress import track

    if total is None and cpu_seconds is None:
        raise ValueError("give a number of steps or CPU seconds")
    history.setdefault("loss", [])
    history.setdefault("steps", 0)
    history.setdefault("cpu_seconds", 0.0)
    cpu0, t_cpu = history["cpu_seconds"], time.process_time()
    end = total if stop_at is None else (stop_at if total is None else min(total, stop_at))
    steps = range(history["steps"], end) if end is not None else count(history["steps"])
    shown, shown_total = steps, end
    if cpu_seconds is not None:  # the CPU budget, not the step count, decides the end: no step total, no ETA
        description = f"{description} (stops at {cpu_seconds:g} CPU s{'' if end is None else f' or {end} steps'})"
        shown, shown_total = iter(steps), None  # an iterator: track() takes no total from its length
    for _ in track(shown, description=description, enabled=progress, total=shown_total):
        used = cpu0 + time.process_time() - t_cpu
        if cpu_seconds is not None and used >= cpu_seconds:
            break
        fraction = used / cpu_seconds if cpu_seconds is not None else history["steps"] / total
        loss = float(step(history["steps"], fraction))
        history["loss"].append(loss)
        history["steps"] += 1
        if callback is not None:
            callback(history["steps"], total, loss)
        if checkpoint is not None and history["steps"] % every == 0:
            history["cpu_seconds"] = cpu0 + time.process_time() - t_cpu
            checkpoint(history)
    history["cpu_seconds"] = cpu0 + time.process_time() - t_cpu
    if checkpoint is not None:
        checkpoint(history)
    return history


# ---- checkpoint / resume ------------------------------------------------------------------------------------
def save_state(folder: str | Path, net: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
               rng: np.random.Generator, history: dict, extra: dict | None = None) -> None:
    """The whole training state (weights, optimiser, both generators, history) as safetensors + JSON."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for name, value in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["generator"] = gen.get_state()
    tmp = folder / (STATE_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / STATE_WEIGHTS)
    meta = {"history": history, "rng": rng.bit_generator.state, "param_groups": opt_state["param_groups"],
            **(extra or {})}
    (folder / STATE_JSON).write_text(json.dumps(meta) + "\n", encoding="utf-8")


def has_state(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds a state written by :func:`save_state`."""
    return folder is not None and (Path(folder) / STATE_JSON).is_file()


def load_state(folder: str | Path, net: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
               rng: np.random.Generator) -> dict:
    """Restore what :func:`save_state` wrote into ``net``, ``opt``, ``gen`` and ``rng``; returns the history."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / STATE_WEIGHTS))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(tensors["generator"])
    rng.bit_generator.state = meta["rng"]
    return meta["history"]
