"""Turn taking: end-of-turn scoring (more to come: the speculative cascade and its gate)."""
