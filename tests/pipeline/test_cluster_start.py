"""Starting a LocalCluster the way the CLI does (`pipeline.cluster.start_client`): what the user sees."""

from __future__ import annotations

import pytest


@pytest.mark.cluster
def test_a_taken_dashboard_port_gives_no_warning():
    """Another program on the dashboard's port: the dashboard moves, and nothing is printed about it."""
    import socket
    import warnings

    from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = ClusterOptions(n_workers=1, kiwi=False, dashboard_address=f"127.0.0.1:{port}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = start_client(options)
            try:
                assert client.dashboard_link and f":{port}/" not in client.dashboard_link
            finally:
                stop_client(client)
    assert not [w for w in caught if "already in use" in str(w.message)]
