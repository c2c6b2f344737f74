"""The cluster across processes (and hosts): a ClusterSupervisor, one Coordinator and N Workers on
thespian ``multiprocTCPBase``. See ``docs/cluster.md``. Importing this package starts nothing."""
