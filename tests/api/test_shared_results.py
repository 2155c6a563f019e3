"""The JSON of pushed messages: the same text as a plain encoding, whatever the data, and one
encoding of a shared result's data for every subscriber."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.api import shared_results

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    op_id=st.text(),
    data=st.dictionaries(st.text(), _JSON, max_size=5),
    kind=st.sampled_from(["next", "complete", "error"]),
)
def test_encoding_equals_the_plain_encoding(op_id: str, data: dict[str, Any], kind: str) -> None:
    message = {"id": op_id, "type": kind, "payload": {"data": data}}
    plain = json.dumps(message, separators=(",", ":"))
    assert shared_results.encode_json(message) == plain
    assert shared_results.encode_json(message) == plain  # remembered: the same text


def test_a_shared_payload_is_encoded_once(monkeypatch: Any) -> None:
    data = {"inboxChanged": {"seq": 7, "item": {"title": "Deploy"}}}
    calls: list[object] = []
    real = json.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        calls.append(value)
        return real(value, **kwargs)

    monkeypatch.setattr(shared_results.json, "dumps", counting)
    texts = [
        shared_results.encode_json({"id": str(n), "type": "next", "payload": {"data": data}})
        for n in range(50)
    ]
    assert [json.loads(t)["id"] for t in texts] == [str(n) for n in range(50)]
    assert all(json.loads(t)["payload"] == {"data": data} for t in texts)
    assert sum(1 for c in calls if isinstance(c, dict)) == 1  # the payload, once
