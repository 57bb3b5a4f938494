"""What every paper config dataclass shares: ``to_dict`` and a ``from_dict`` that refuses unknown keys.

The configs (``UNetConfig``, ``ACWEConfig``, ``PixelDRLConfig``, ``IterMRLConfig``, ``BaselineConfig``,
``SelectorConfig``, ``JULEConfig``, ``UDCConfig``) each had their own copy of these two methods, and three of
them silently dropped keys they did not know. A config that records run facts next to its fields (a saved
proposal's config) names them in ``_facts``; those, and only those, are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="ConfigDict")


class ConfigDict:
    """Mixin for ``@dataclass`` configs: ``to_dict()`` and a strict ``from_dict()``."""

    #: keys written next to the fields (run facts) that ``from_dict`` skips
    _facts: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict) -> C:
        """Build from :meth:`to_dict` output (lists become tuples where the field is a tuple).

        Raises
        ------
        ValueError
            A key that is neither a field nor one of ``_facts``.
        """
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known) - set(cls._facts))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        values = {}
        for key, value in data.items():
            if key in known:
                is_tuple = isinstance(getattr(cls, key, None), tuple) or "tuple" in str(known[key].type)
                values[key] = tuple(value) if isinstance(value, list) and is_tuple else value
        return cls(**values)
