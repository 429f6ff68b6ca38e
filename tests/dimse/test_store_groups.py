"""C-STORE grouping: no association over 128 contexts, groups as full as allowed, order kept."""

from __future__ import annotations

import itertools
from pathlib import Path

from dicomstation.nodes.dimse_assoc import MAX_CONTEXTS
from dicomstation.nodes.dimse_store import Outgoing, _contexts_for, _groups


def test_groups_are_bounded_maximal_and_ordered(dimse_transport: str) -> None:
    syntaxes = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"]
    items = [
        Outgoing(Path(f"{n}.dcm"), f"1.2.3.{n % 70}", f"9.{n}", syntaxes[n % 3], 10)
        for n in range(600)
    ]
    groups = _groups(items)
    assert [i for g in groups for i in g] == items
    assert len(groups) > 1
    for group, following in itertools.pairwise(groups):
        assert len(_contexts_for(group)) <= MAX_CONTEXTS
        assert len(_contexts_for([*group, following[0]])) > MAX_CONTEXTS
    assert len(_contexts_for(groups[-1])) <= MAX_CONTEXTS
