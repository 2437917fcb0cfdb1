"""Which gallery entries count for a query, and how a CMC rank is counted: each protocol's rule.

The three benchmarks' authors score the same ranked list in three ways:
- `EveryEntry` (RegDB, `eval_regdb`): every gallery image counts; the CMC rank is the position
  of the first true match.
- `SYSUCameraRule` (SYSU-MM01, `eval_sysu`): for a query of thermal camera 3, gallery images of
  RGB camera 2 are removed (the two cameras share a room); the CMC counts distinct identities.
- `SameIdentityCameraRule` (LLCM, DEEN's `eval_llcm`): gallery images of the query's identity
  from the query's camera are removed; the CMC counts distinct identities.

A protocol holds its rule (`protocol.rule`) and `ddag.evaluation.metrics.rank_metrics` asks it;
the rule's `name` is what results record as the protocol's metric.
"""

from typing import Dict

import numpy as np


class GalleryRule:
    """The rule interface: `keep` and two declared properties.

    Attributes:
        name: recorded in result fingerprints ("regdb", "sysu", "llcm").
        needs_cameras: `keep` reads query and gallery cameras.
        distinct_identities: the CMC rank counts distinct gallery identities before the first
            true match (SYSU, LLCM) instead of gallery entries (RegDB).
    """

    name = ""
    needs_cameras = False
    distinct_identities = False

    def keep(self, query_ids, gallery_ids, query_cams, gallery_cams) -> np.ndarray:
        """(queries, gallery) mask of the gallery entries that count for each query."""
        raise NotImplementedError


class EveryEntry(GalleryRule):
    name = "regdb"

    def keep(self, query_ids, gallery_ids, query_cams, gallery_cams) -> np.ndarray:
        return np.ones((len(query_ids), len(gallery_ids)), dtype=bool)


class SYSUCameraRule(GalleryRule):
    name = "sysu"
    needs_cameras = True
    distinct_identities = True

    def keep(self, query_ids, gallery_ids, query_cams, gallery_cams) -> np.ndarray:
        return ~((query_cams[:, None] == 3) & (gallery_cams[None, :] == 2))


class SameIdentityCameraRule(GalleryRule):
    name = "llcm"
    needs_cameras = True
    distinct_identities = True

    def keep(self, query_ids, gallery_ids, query_cams, gallery_cams) -> np.ndarray:
        same_id = gallery_ids[None, :] == query_ids[:, None]
        return ~(same_id & (gallery_cams[None, :] == query_cams[:, None]))


REGDB, SYSU, LLCM = EveryEntry(), SYSUCameraRule(), SameIdentityCameraRule()
RULES: Dict[str, GalleryRule] = {rule.name: rule for rule in (REGDB, SYSU, LLCM)}
