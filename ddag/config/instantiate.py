"""Config nodes to objects: Hydra's instantiate, with our own errors re-raised as they are."""

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ddag.errors import ConfigError, DdagError


def build(node, **kwargs):
    """`hydra.utils.instantiate`, re-raising our own errors instead of Hydra's wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, DdagError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError)):
            raise ConfigError(str(err)) from err
        raise
