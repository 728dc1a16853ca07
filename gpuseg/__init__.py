"""gpuseg: customer segmentation for e-commerce logs, on GPU (RAPIDS) or CPU.

Importing gpuseg imports no GPU library and never initialises CUDA; the device is chosen
when a run starts (:func:`gpuseg.backend.select`).

It sets one default, unless the process already has one: ``OMP_WAIT_POLICY=PASSIVE``, so
that OpenMP threads (scikit-learn's, torch's) sleep instead of spinning while they wait. An
OpenMP runtime reads it once, when it loads, so it holds where gpuseg is imported before
scikit-learn or torch (as the command line does). Spinning threads on shared cores made one
adaptive K-means sweep 2.8x slower on a busy 2-core machine (38 s against 13.7 s), and DEC
on 3,000 customers 2-3x slower beside one busy process (18.9 s against 6.5-8.9 s).
"""

from __future__ import annotations

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__"]
