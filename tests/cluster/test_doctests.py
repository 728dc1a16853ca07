"""The docstring examples of gpuseg.cluster run as written (``pytest --doctest-modules
gpuseg/cluster``): NumPy 2 prints ``np.int64(2)`` for a scalar, so examples print lists."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gpuseg.cluster

MODULES = sorted(m.name for m in pkgutil.walk_packages(gpuseg.cluster.__path__, "gpuseg.cluster."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name == "gpuseg.cluster.deep":
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"
