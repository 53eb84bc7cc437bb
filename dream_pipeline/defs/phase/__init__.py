"""PHASE, everything about 03:00 in one folder: the window (window.py), the schedule that opens it
(schedule.py) and the nightly job whose completion resumes the loop (job.py)."""
