"""Judges for AlpacaEval: the standard LLM judge (any OpenAI-compatible endpoint) and the
deterministic testbed judge served over a loopback OpenAI-compatible server."""
