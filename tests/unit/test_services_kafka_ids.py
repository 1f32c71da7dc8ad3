"""The KRaft cluster ids the test broker formats its storage with."""

from __future__ import annotations

import base64

from driftwarden.services.kafka import new_cluster_id


def test_cluster_ids_are_kafka_uuids_that_never_read_as_a_flag() -> None:
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    for cluster_id in ids:
        # kafka-storage reads an argument starting with "-" as an option and exits 1
        assert not cluster_id.startswith("-"), cluster_id
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
