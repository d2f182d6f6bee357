"""Scaling-law tools: sweeps, power-law fits, predictions and plots."""
