"""Which channels of a :class:`~scarceseg.io.case.Case` a method sees: the one choice every method shares."""

from __future__ import annotations

import numpy as np

from scarceseg.errors import InputError
from scarceseg.io.case import Case


def auto_channel(case: Case) -> int:
    """The index of the channel named FLAIR (case-insensitive) when there is one, else 0."""
    names = [n.lower() for n in case.channel_names]
    return names.index("flair") if "flair" in names else 0


def pick_channel(case: Case, channel: str | int | None = None) -> np.ndarray:
    """One channel as a spatial float32 array ``(Y, X)`` or ``(Z, Y, X)``.

    Parameters
    ----------
    case : Case
    channel : str, int or None
        ``None`` or ``"auto"``: the channel named FLAIR when there is one, else channel 0; an index (int or
        digits); otherwise a channel name (case-insensitive).

    Raises
    ------
    InputError
        No such channel (the message names the case's file).
    """
    if channel is None or channel == "auto":
        key: str | int = auto_channel(case)
    elif isinstance(channel, int) or str(channel).strip().lstrip("-").isdigit():
        key = int(channel)
    else:
        key = str(channel).strip()
    try:
        return np.asarray(case.channel(key), dtype=np.float32)
    except (KeyError, IndexError) as exc:
        raise InputError(case.source, f"cannot select channel {channel!r}: {exc}") from None


def pick_channels(case: Case, channels: str = "all") -> np.ndarray:
    """Several channels ``(C', ...)`` float32: ``"all"``, or comma-separated names / indices (``"0,2"``)."""
    if channels.strip().lower() == "all":
        return np.asarray(case.image, dtype=np.float32)
    return np.stack([pick_channel(case, token) for token in channels.split(",")]).astype(np.float32)
