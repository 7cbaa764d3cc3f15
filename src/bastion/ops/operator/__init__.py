"""The operator agent: Alertmanager's alerts in, analysed, safe actions proposed and validated.

One concept per module: :mod:`.payload` (the webhook's shape), :mod:`.analysis` (the answer's
shape and the fixed action set), :mod:`.rules` (the analysis that is always there),
:mod:`.analyst` (the LLM's, validated), :mod:`.prometheus` (the alert's series as context),
:mod:`.actions` (what each action does), :mod:`.silences` (Alertmanager silences),
:mod:`.validation` (did it work), :mod:`.effectiveness` (how well each action works) and
:mod:`.service` (the agent that ties them together).
"""
