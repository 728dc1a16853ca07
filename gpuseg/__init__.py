"""gpuseg: customer segmentation for e-commerce logs, on GPU (RAPIDS) or CPU.

Importing gpuseg imports no GPU library and never initialises CUDA; the device is chosen
when a run starts (:func:`gpuseg.backend.select`).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
