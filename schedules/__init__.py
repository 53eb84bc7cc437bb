"""When the loop may run: the nightly PHASE window and the schedule that opens it."""

from schedules.phase_window import PhaseWindow, phase_window_from_env

__all__ = ["PhaseWindow", "phase_window_from_env"]
