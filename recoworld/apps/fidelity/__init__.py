"""``recoworld fidelity``: how closely simulated users match held-out behaviour."""
