"""The loop on Dagster: the sensor that runs epochs back to back (sensors.py, its decision `plan_loop`), what it
reads of Dagster's runs (loop_state.py), and downtime bookkeeping (downtime.py). Sensors decide *when* the next
epoch runs; they never call an engine or do heavy SQL."""
