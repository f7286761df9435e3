"""Gymnasium environments that put a simulator in front of an agent."""
