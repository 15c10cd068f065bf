"""The detector registry: one class per detector family, run by ``graph.scoring`` in this order.

Every detector is built like a scikit-learn estimator (``graph.detectors.base.BaseDetector``): ``__init__``
stores its parameters verbatim, ``fit(projection)`` returns self, and the table it reports is ``result_``
(the rows of the output named by the class's ``output``; scores are "higher = more suspicious").
"""

from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.integrity import IntegrityDetector
from graph.detectors.networks import MerchantNetworkDetector
from graph.detectors.rings import RingDetector
from graph.detectors.skimming import SkimmingDetector

__all__ = ["DETECTORS", "ClonedCardDetector", "IntegrityDetector", "MerchantNetworkDetector", "RingDetector",
           "SkimmingDetector"]

DETECTORS = {cls.name: cls for cls in (SkimmingDetector, ClonedCardDetector, RingDetector, MerchantNetworkDetector,
                                       IntegrityDetector)}
