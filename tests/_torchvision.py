"""Make PyPI's torchvision importable beside the CPU-only torch build used here.

torchvision registers kernels for ``torchvision::nms`` / ``torchvision::qnms`` at import time and
fails ("operator torchvision::nms does not exist") when its compiled ops library cannot define
them. Declaring the two op schemas first with ``torch.library`` lets the import succeed; the
resize paths that transformers' default (torchvision-backed) image processors use do not need
those ops. Tests that compare with transformers import torchvision through this helper.
"""

from __future__ import annotations

_LIBS: list = []  # keep the torch.library handles alive for the whole process


def import_torchvision():
    """Import and return ``torchvision``, declaring its nms op schemas first if needed."""
    import torch

    try:
        import torchvision  # noqa: F401

        return torchvision
    except (RuntimeError, ImportError):
        pass
    import sys

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # drop the half-imported package before retrying
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)
    import torchvision

    return torchvision
