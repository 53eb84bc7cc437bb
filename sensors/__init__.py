"""Sensors decide *when* the next epoch runs; they never call an engine or do heavy SQL."""

from sensors.loop import LoopSnapshot, dream_loop_sensor, epoch_failure_sensor, next_key, plan_loop

__all__ = ["LoopSnapshot", "dream_loop_sensor", "epoch_failure_sensor", "next_key", "plan_loop"]
