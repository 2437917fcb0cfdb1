"""The training objective: network + named, weighted loss terms -> (total, per-term values).

The first output is what gets differentiated; the tuple of term values is auxiliary (logging and
the dynamic weight). Term names stay on the Python side (`term_names`) so the compiled graph only
handles tensors. What is special to DDAG's training loop, the dynamic graph weight and the graph
branch's dropout noise, is one component (`GraphBranchInputs`) the objective hands to the step
(`step_inputs`) and checkpoints under its declared `state_key`. The step's first inputs are the
loader's columns, in the order `ddag.data.loader.Batch` names them.
"""

from typing import Dict, Optional, Tuple

import numpy as np
from mindspore import nn, ops

from ddag.engine.phases import EpochWindow
from ddag.errors import ConfigError
from ddag.losses.graph_branch import GraphBranchInputs
from ddag.losses.terms import LossTerm
from ddag.models.attention.cgsa import identity_adjacency
from ddag.utils.logging import get_logger

log = get_logger(__name__)


class Objective(nn.Cell):
    """Sums `weight x term` over the configured terms.

    Its training state (the graph weight) is stored in checkpoints under `state_key`.

    Args:
        network: a DDAG network whose training forward returns `network.output_names`, with
            `rows_per_image` rows per image (3 with DEEN's expansion; the labels are repeated
            as its authors repeat them: visible, thermal, visible, thermal, ...).
        terms: name -> LossTerm. A term whose output the network does not produce (for example the
            graph term when graph attention is off) is dropped with a log line.
        batch_pairs: visible/thermal pairs per training step (sizes the dropout noise); needed
            by `step_inputs`.
        seed: seed of the dropout noise; step s draws from the generator seeded by (seed, s),
            so a resumed run repeats it.
        visible_views: visible images per pair in a batch (2: CAJ's two views, 2B visible and
            B thermal images per step).
        windows: name -> EpochWindow of the terms that act in some epochs only (PMT's
            progressive phase); a term outside its window is not computed, adds nothing and
            is reported as 0. Each distinct set of active terms compiles once.
    """

    state_key = "objective"

    def __init__(
        self,
        network,
        terms: Dict[str, LossTerm],
        batch_pairs: Optional[int] = None,
        seed: int = 0,
        visible_views: int = 1,
        windows: Optional[Dict[str, EpochWindow]] = None,
    ):
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
            rows = term.needs_rows_per_image
            if rows is not None and rows != getattr(network, "rows_per_image", 1):
                raise ConfigError(
                    f"loss term {name!r} ({type(term).__name__}) reads {rows} embeddings per "
                    "image, which this network does not give; it needs model/expansion=dee"
                )
            if visible_views != 1 and term.needs_paired_halves:
                raise ConfigError(
                    f"loss term {name!r} ({type(term).__name__}) reads the batch as equal "
                    "visible and thermal halves, which loader.visible_views=2 does not give"
                )
            kept[name] = term
        if not kept:
            raise ConfigError("the loss has no terms left for this model")
        windows = windows or {}
        unknown = sorted(set(windows) - set(terms))
        if unknown:
            raise ValueError(f"epoch windows of unknown loss terms: {unknown}")
        self.term_names = tuple(kept)
        self.windows = tuple(windows.get(name, EpochWindow()) for name in kept)
        self.terms = nn.CellList(list(kept.values()))
        self.output_index = tuple(network.output_names.index(t.output) for t in kept.values())
        self.static_weights = tuple(0.0 if t.dynamic else t.weight for t in kept.values())
        self.dynamic_mask = tuple(1.0 if t.dynamic else 0.0 for t in kept.values())
        self.batch_pairs, self.seed, self.visible_views = batch_pairs, seed, visible_views
        self.rows_per_image = getattr(network, "rows_per_image", 1)
        self.graph_branch = None
        if batch_pairs is not None:
            self.graph_branch = GraphBranchInputs(self.noise_size(batch_pairs), seed)
        self._instance = np.array(self.instance_term_mask)

    @property
    def instance_term_mask(self):
        """True for the terms whose epoch mean drives the dynamic weight (the non-dynamic ones)."""
        return tuple(m == 0.0 for m in self.dynamic_mask)

    def noise_size(self, batch_pairs: int) -> int:
        """Length of the dropout noise one step over `batch_pairs` visible/thermal pairs needs."""
        return self.network.noise_size((1 + self.visible_views) * batch_pairs)

    def _graph(self) -> GraphBranchInputs:
        if self.graph_branch is None:
            raise ValueError("the Objective needs batch_pairs to train (the noise size)")
        return self.graph_branch

    def active_terms(self, epoch: int) -> Tuple[bool, ...]:
        """Per term, whether it acts during 0-based `epoch` (its epoch window)."""
        return tuple(window.active(epoch) for window in self.windows)

    def fullest_epoch(self) -> int:
        """The first epoch in which the most terms act (what a benchmark of the step times)."""
        starts = {0} | {w.from_epoch for w in self.windows}
        return max(sorted(starts), key=lambda epoch: sum(self.active_terms(epoch)))

    def check_epochs(self, epochs: int) -> None:
        """ConfigError naming the first of `epochs` epochs in which no loss term acts."""
        for epoch in range(epochs):
            if not any(self.active_terms(epoch)):
                windows = {n: w.describe() for n, w in zip(self.term_names, self.windows)}
                raise ConfigError(
                    f"no loss term acts in epoch {epoch} (0-based); the terms' windows are "
                    f"{windows}. Widen a term's from_epoch/until_epoch"
                )

    def step_inputs(self, step: int, epoch: int = 0):
        """(graph weight, dropout noise, active terms) of training step `step` in `epoch`,
        after the batch's tensors. The active terms are a tuple of Python booleans: a compiled
        step treats them as constants, so a phase change compiles the step once more."""
        return (*self._graph().step_inputs(step), self.active_terms(epoch))

    def step_end(self, values: np.ndarray) -> None:
        """A finished step's (total, *terms): the instance terms feed the dynamic weight."""
        self._graph().step_end(values[1:][self._instance].sum())

    def epoch_end(self) -> None:
        self._graph().epoch_end()

    def scalars(self) -> Dict[str, float]:
        return self._graph().scalars()

    def state_dict(self) -> dict:
        return self._graph().state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._graph().load_state_dict(state)

    def construct(
        self, visible, thermal, visible_label, thermal_label, graph_weight, noise, active=None
    ):
        labels = ops.cat((visible_label, thermal_label), axis=0)
        if self.rows_per_image > 1:
            labels = ops.tile(labels, (self.rows_per_image,))
        outputs = self.network(visible, thermal, identity_adjacency(labels), noise)
        values = ()
        total = 0.0
        for i in range(len(self.terms)):
            if active is None or active[i]:
                value = self.terms[i](outputs[self.output_index[i]], labels)
                weight = self.static_weights[i] + self.dynamic_mask[i] * graph_weight
                total = total + value * weight
            else:
                value = ops.zeros((), outputs[0].dtype)
            values = values + (value,)
        return total, values
