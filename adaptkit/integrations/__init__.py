"""adaptkit's turn models inside voice-agent frameworks (LiveKit, pipecat)."""
