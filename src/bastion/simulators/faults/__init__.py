"""Fault injection shared by Bastion's simulators: the paper exchange and the fake LLM server.

Both simulators fail on cue the same way, so a chaos test reads the same against either and a
fix to how a hang ends or a drop looks reaches both. What they share lives here, one concept a
module; what is theirs (fault kinds, Deribit or OpenAI error bodies, the routes, the names in
messages) stays in :mod:`bastion.simulators.paper` and :mod:`bastion.simulators.llm`:

- :mod:`.arming`: when an armed fault fires (the next ``count`` calls, or at random from a
  seeded RNG);
- :mod:`.options`: which options each fault kind takes;
- :mod:`.responses`: what goes on the wire (a dropped connection, a hang, a garbled body);
- :mod:`.hangs`: the requests a hang holds, and their release;
- :mod:`.control`: the loopback-only control routes' guard and error answers.
"""
