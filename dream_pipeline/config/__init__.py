"""Configuration: the DREAM_* settings and which experiments (domains) the loop runs."""
