"""The epoch as Dagster sees it: the `epochs` partitions, the asset graph, its checks and the epoch job."""
