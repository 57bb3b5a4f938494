"""The proposers behind :class:`~scarceseg.methods.contract.Proposer`: ``propose(case) -> Proposal``."""

from __future__ import annotations

from typing import Any

from scarceseg.cluster.udc import UDCConfig
from scarceseg.io.case import Case
from scarceseg.methods.config import apply, config_model, validate


class UDCProposer:
    """Paper 000's unsupervised proposer: SLIC + clustering CNN, clusters turned into candidate masks.

    Config: ``preset`` (fast | faithful), ``channels`` (flair | all), ``seed`` and any UDCConfig field.
    """

    name = "udc"
    kind = "proposer"
    schema = config_model("UDCOptions", UDCConfig, preset=(str, "fast"), channels=(str, "flair"), seed=(int, 0))

    def __init__(self, config: dict | None = None) -> None:
        self.options = validate(self.schema, config)
        self.config: dict[str, Any] = self.options.model_dump(mode="json", exclude_none=True)
        self.udc = apply(UDCConfig.preset(self.options.preset), self.options)

    def propose(self, case: Case):
        """Candidates of one 2D case (:class:`scarceseg.cluster.propose.Proposal`)."""
        from scarceseg.cluster.propose import propose_case

        return propose_case(case, self.udc, channels=self.options.channels, seed=self.options.seed)
