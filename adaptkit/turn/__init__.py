"""Turn taking: when has the speaker finished? A cheap gate (GRU or Silero VAD) runs on every
100 ms chunk; a turn model (3-tag Speech-LLM, end-of-turn LM or Smart Turn) is asked only at
silences (the speculative cascade); `adaptkit cascade` trains the gate, runs every turn model and
the baselines, and scores them with `adaptkit.eval.frame_metrics`."""
