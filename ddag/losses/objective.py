"""The training objective: network + named, weighted loss terms -> (total, per-term values).

The first output is what gets differentiated; the tuple of term values is auxiliary (logging and
the dynamic weight). Term names stay on the Python side (`term_names`) so the compiled graph only
handles tensors.
"""

from typing import Dict

from mindspore import nn, ops

from ddag.errors import ConfigError
from ddag.losses.terms import LossTerm
from ddag.models.attention.cgsa import identity_adjacency
from ddag.utils.logging import get_logger

log = get_logger(__name__)


class Objective(nn.Cell):
    """Sums `weight x term` over the configured terms.

    Args:
        network: a DDAG network whose training forward returns `network.output_names`.
        terms: name -> LossTerm. A term whose output the network does not produce (for example the
            graph term when graph attention is off) is dropped with a log line.
    """

    def __init__(self, network, terms: Dict[str, LossTerm]):
        super().__init__(auto_prefix=False)  # keep the network's parameter names (checkpoint API)
        self.network = network
        kept = {}
        for name, term in terms.items():
            if term.output not in network.output_names:
                if term.output in ("logits_att", "graph_log_probs"):
                    log.info("loss term %r skipped: the model has no %s branch", name, term.output)
                    continue
                raise ConfigError(
                    f"loss term {name!r} reads output {term.output!r}, which the network does not "
                    f"produce; valid outputs: {list(network.output_names)}"
                )
            kept[name] = term
        if not kept:
            raise ConfigError("the loss has no terms left for this model")
        self.term_names = tuple(kept)
        self.terms = nn.CellList(list(kept.values()))
        self.output_index = tuple(network.output_names.index(t.output) for t in kept.values())
        self.static_weights = tuple(0.0 if t.dynamic else t.weight for t in kept.values())
        self.dynamic_mask = tuple(1.0 if t.dynamic else 0.0 for t in kept.values())

    @property
    def instance_term_mask(self):
        """True for the terms whose epoch mean drives the dynamic weight (the non-dynamic ones)."""
        return tuple(m == 0.0 for m in self.dynamic_mask)

    def noise_size(self, batch_pairs: int) -> int:
        """Length of the dropout noise one step over `batch_pairs` visible/thermal pairs needs."""
        return self.network.noise_size(2 * batch_pairs)

    def construct(self, visible, thermal, visible_labels, thermal_labels, graph_weight, noise):
        labels = ops.cat((visible_labels, thermal_labels), axis=0)
        outputs = self.network(visible, thermal, identity_adjacency(labels), noise)
        values = ()
        total = 0.0
        for i in range(len(self.terms)):
            value = self.terms[i](outputs[self.output_index[i]], labels)
            total = total + value * (self.static_weights[i] + self.dynamic_mask[i] * graph_weight)
            values = values + (value,)
        return total, values
