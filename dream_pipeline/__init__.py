"""D-REAM on Dagster: the Space Time tournament as a partitioned asset graph."""
