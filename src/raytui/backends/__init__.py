"""LLM work on the cluster: Ollama/OpenAI/vLLM tasks and actors, dispatch, history. No Textual."""
