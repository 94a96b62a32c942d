"""The results schema: round trips, versioning, the fluid bound."""

from __future__ import annotations

import json
import math

import pytest

from damselfly.results import (
    SCHEMA_VERSION,
    PeerRecord,
    Result,
    SchemaError,
    fluid_lower_bound,
    utilisation_summary,
)


def sample() -> Result:
    peers = [
        PeerRecord(
            peer_id="a/0",
            host_id="a",
            task="u",
            registered_at=0.0,
            first_byte_at=0.1,
            finished_at=2.0,
            outcome="succeeded",
        ),
        PeerRecord(
            peer_id="b/1",
            host_id="b",
            task="u",
            registered_at=0.0,
            crashed_at=1.0,
            outcome="crashed",
        ),
    ]
    peers[0].bytes_from["peer"] = 100
    return Result(
        driver="sim",
        content_bytes=100,
        peers=peers,
        totals={"bytes_sent": 100.0},
        links={},
        timeline={"t": [0.0, 1.0]},
        decisions={"Parents": 2},
        wall_time_s=0.5,
        t_min=1.0,
        t_last_finish=2.0,
        efficiency=0.5,
        extra={"x": math.inf},
        seed=3,
    )


def test_round_trip_and_finite_json() -> None:
    result = sample()
    text = result.to_json()
    data = json.loads(text)
    assert data["schema"] == "damselfly.result" and data["version"] == SCHEMA_VERSION
    assert data["extra"]["x"] is None  # inf is written as null
    again = Result.from_json(text)
    assert again.peers[0].duration == 2.0
    assert again.outcomes() == {"succeeded": 1, "failed": 0, "crashed": 1, "unfinished": 0}
    assert list(again.finish_times()) == [2.0]
    assert again.to_json() == text


def test_unknown_versions_and_documents_are_refused() -> None:
    data = sample().to_dict()
    data["version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="version"):
        Result.from_dict(data)
    with pytest.raises(SchemaError):
        Result.from_dict({"schema": "other"})
    data["version"] = SCHEMA_VERSION
    del data["peers"]
    with pytest.raises(SchemaError, match="malformed"):
        Result.from_dict(data)


def test_write_and_read(tmp_path) -> None:
    path = tmp_path / "run.json"
    sample().write(path)
    assert Result.read(path).seed == 3


def test_fluid_lower_bound_takes_the_largest_term() -> None:
    # Origin-bound, download-bound, and swarm-bound cases.
    assert fluid_lower_bound(100, 10.0, [1000.0], [1000.0]) == 10.0
    assert fluid_lower_bound(100, 1000.0, [1000.0, 1000.0], [1000.0, 5.0]) == 20.0
    assert fluid_lower_bound(100, 100.0, [10.0] * 9, [1e9] * 9) == pytest.approx(900 / 190)
    assert fluid_lower_bound(0, 1.0, [], []) == 0.0


def test_utilisation_summary() -> None:
    assert utilisation_summary([])["count"] == 0
    summary = utilisation_summary([0.0, 0.5, 1.0])
    assert summary["mean"] == 0.5 and summary["max"] == 1.0 and summary["p50"] == 0.5
