"""CGSA: cross-modality graph-structured attention (training-only branch).

DDAG paper section 3.3: a graph over the two-modality batch whose edges join samples of the same
identity; multi-head graph attention (GAT) propagates features along it and its class
log-probabilities are trained with an NLL loss. Reference: mangye16/DDAG `attention.py`
(GraphAttentionLayer, pyGAT) and `model_main.py` (GAT with 4 heads). Unlike the MindSpore port,
the heads are registered, trained and saved.

Dropout here takes its randomness as an input: a flat uniform [0, 1) `noise` vector drawn on the
host from (seed, step) by the trainer. MindSpore's in-graph dropout did not repeat between two
runs with the same seed on CPU (measured with 2.8.0), and host noise also makes resume exact.
"""

from mindspore import Parameter, Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import XavierUniform, initializer

_MASKED = -9e15


class GraphAttentionLayer(nn.Cell):
    """One GAT layer: h = xW, e_ij = LeakyReLU(a^T [h_i || h_j]) over edges, softmax over j.

    Args:
        in_features: input width.
        out_features: output width.
        dropout: dropout rate applied to the attention coefficients.
        alpha: negative slope of the LeakyReLU.
        concat: apply ELU to the output (hidden layers) or not (output layer).
    """

    def __init__(
        self, in_features: int, out_features: int, dropout: float, alpha: float, concat: bool
    ):
        super().__init__()
        self.out_features = out_features
        self.dropout = dropout
        self.concat = concat
        self.W = Parameter(
            initializer(XavierUniform(gain=1.414), (in_features, out_features)), name="W"
        )
        self.a = Parameter(initializer(XavierUniform(gain=1.414), (2 * out_features, 1)), name="a")
        self.leaky_relu = nn.LeakyReLU(alpha)

    def _coefficients(self, h, adjacency):
        # a^T [h_i || h_j] = h_i . a_left + h_j . a_right, without building the N^2 x 2F tensor.
        left = ops.matmul(h, self.a[: self.out_features])
        right = ops.matmul(h, self.a[self.out_features :])
        scores = self.leaky_relu(left + right.transpose(1, 0))
        scores = ops.where(adjacency > 0, scores, ops.full_like(scores, _MASKED))
        return ops.softmax(scores, axis=1)

    def attention(self, x, adjacency):
        """(N, N) attention coefficients over the graph (rows sum to 1), without dropout."""
        return self._coefficients(ops.matmul(x, self.W), adjacency)

    def construct(self, x, adjacency, noise):
        """(N, in) features, (N, N) adjacency, (N, N) uniform noise for dropout -> (N, out)."""
        h = ops.matmul(x, self.W)
        attention = self._coefficients(h, adjacency)
        attention = noise_dropout(attention, noise, self.dropout, self.training)
        out = ops.matmul(attention, h)
        if self.concat:
            out = ops.elu(out)
        return out


# Bounds on what the graph branch may allocate (the paper: 4 heads of 512).
MAX_HEADS = 64
MAX_LOW_DIM = 65536


def _check_sizes(num_heads: int, low_dim: int) -> None:
    if not (1 <= num_heads <= MAX_HEADS and 1 <= low_dim <= MAX_LOW_DIM):
        raise ValueError(
            f"num_heads={num_heads} must be in 1..{MAX_HEADS} and low_dim={low_dim} in "
            f"1..{MAX_LOW_DIM}"
        )


class GraphStructuredAttention(nn.Cell):
    """Multi-head GAT over the batch graph: (N, C) pooled features -> (N, classes) log-probs.

    Args:
        in_features: width of the pooled backbone feature.
        num_classes: number of training identities.
        low_dim: width of each hidden head (paper 512).
        num_heads: hidden heads, concatenated (paper 4).
        dropout: dropout on the inputs, the hidden output and the attention (paper 0.2).
        alpha: LeakyReLU slope (paper 0.2).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        low_dim: int = 512,
        num_heads: int = 4,
        dropout: float = 0.2,
        alpha: float = 0.2,
    ):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        _check_sizes(num_heads, low_dim)
        self.heads = nn.CellList(
            [
                GraphAttentionLayer(in_features, low_dim, dropout, alpha, True)
                for _ in range(num_heads)
            ]
        )
        self.out_attention = GraphAttentionLayer(
            low_dim * num_heads, num_classes, dropout, alpha, False
        )
        self.dropout = dropout
        self.in_features = in_features
        self.hidden_features = low_dim * num_heads
        self.num_heads = num_heads

    @classmethod
    def expected_shapes(
        cls, in_features: int, num_classes: int, low_dim: int = 512, num_heads: int = 4, **_
    ) -> dict:
        """Tensors witnessing what this module allocates (checked against a file before loading)."""
        _check_sizes(num_heads, low_dim)
        shapes = {f"heads.{h}.W": (in_features, low_dim) for h in range(num_heads)}
        shapes["out_attention.W"] = (low_dim * num_heads, num_classes)
        return shapes

    def noise_size(self, num_nodes: int) -> int:
        """Length of the uniform noise vector one forward pass over `num_nodes` samples uses."""
        n = num_nodes
        return n * self.in_features + n * self.hidden_features + (self.num_heads + 1) * n * n

    def head_attention(self, features, adjacency):
        """(heads, N, N) attention coefficients of the hidden heads over the batch graph, at
        inference (no dropout): how much each sample draws on each of its neighbours."""
        return ops.stack([head.attention(features, adjacency) for head in self.heads])

    def construct(self, features, adjacency, noise):
        """(N, C) pooled features, (N, N) adjacency, flat noise -> (N, classes) log-probs."""
        n = features.shape[0]
        cut = n * self.in_features
        x = noise_dropout(features, noise[:cut].reshape(n, -1), self.dropout, self.training)
        outputs = ()
        for head in self.heads:
            outputs = outputs + (head(x, adjacency, noise[cut : cut + n * n].reshape(n, n)),)
            cut = cut + n * n
        x = ops.cat(outputs, axis=1)
        hidden = noise[cut : cut + n * self.hidden_features].reshape(n, -1)
        x = noise_dropout(x, hidden, self.dropout, self.training)
        cut = cut + n * self.hidden_features
        x = self.out_attention(x, adjacency, noise[cut : cut + n * n].reshape(n, n))
        return ops.log_softmax(ops.elu(x), axis=1)


def noise_dropout(x, noise, rate: float, training: bool):
    """Inverted dropout whose mask is `noise >= rate` (noise uniform in [0, 1), shaped like x)."""
    if not training or rate == 0:
        return x
    return ops.where(noise >= rate, x / (1.0 - rate), ops.zeros_like(x))


def identity_adjacency(labels: Tensor) -> Tensor:
    """Same-identity graph of a batch: A = [y_i == y_j] + I, rows divided by their L2 norm.

    (N,) labels -> (N, N) float32; the diagonal is 2 before normalisation, as in the reference.
    """
    same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1)).astype(mstype.float32)
    adjacency = same + ops.eye(labels.shape[0], labels.shape[0], mstype.float32)
    return adjacency / ops.norm(adjacency, dim=1, keepdim=True)
