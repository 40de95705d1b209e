"""The lossref pytest plugin (registered by the package's ``pytest11`` entry point).

A test that takes the fixture ``lossref_case`` runs once per corpus case, one pytest item
per case id; the marker ``lossref_corpus`` picks the cases::

    import pytest, lossref

    @pytest.mark.lossref_corpus(loss="cosface", dtype="float32")
    def test_my_cosface(lossref_case):
        x = lossref_case.inputs
        loss, grads = my_cosface(x["features"], x["weights"], x["labels"], **lossref_case.params)
        lossref.assert_conforms(lossref_case, outputs={"loss": loss}, gradients=grads)

A failing item shows the verdict of each value group and the diagnosis.
Marker arguments: ``loss`` (a name or a list), ``dtype``, ``tag``, ``ids``, ``options``
(``False``: no case that uses ``softmax_ce``'s SPEC §5 options; ``True``: only those) and
``corpus`` (a corpus directory; default the embedded corpus).
"""

from __future__ import annotations

from typing import Any

import lossref


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "lossref_corpus(loss=None, dtype=None, tag=None, ids=None, options=None, corpus=None): "
        "run the test once per lossref corpus case (fixture lossref_case)",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    if "lossref_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("lossref_corpus")
    kwargs = dict(marker.kwargs) if marker else {}
    corpus = lossref.Corpus.load(kwargs.pop("corpus", None))
    cases = corpus.cases(**kwargs)
    metafunc.parametrize("lossref_case", cases, ids=[c.id for c in cases])
