"""Real HTTP servers speaking model servers' wire formats byte for byte (Ollama, OpenAI SSE)."""
