"""Sensors decide *when* the next epoch runs; they never call an engine or do heavy SQL."""

from sensors.next_epoch import next_epoch_sensor, plan_next_epoch

__all__ = ["next_epoch_sensor", "plan_next_epoch"]
