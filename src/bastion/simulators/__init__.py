"""Simulators: the Deribit-compatible paper exchange and the fake OpenAI-compatible LLM server.

They stand in for the real dependencies in tests, demos and drills, and fail on cue through one
shared fault table (:mod:`bastion.simulators.faults`). They import only the ground floor: the
real clients in :mod:`bastion.exchange` and :mod:`bastion.llm` never import them.
"""
