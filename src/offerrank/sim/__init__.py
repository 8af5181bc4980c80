"""Simulation: the sample-data generator and the closed-loop simulator."""
