"""Simulated users: batched statistical users and LLM users behind one contract."""
