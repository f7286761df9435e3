"""Recommender agents: baselines, bandits, RL and LLM policies."""
