"""Hand-written reinforcement-learning agents, one algorithm per file.

Tabular:  :mod:`agents.dp` (policy evaluation, value iteration, policy iteration),
          :mod:`agents.mc` (Monte Carlo prediction and control),
          :mod:`agents.td` (TD(0), SARSA, expected SARSA, Q-learning).
Tools:    :mod:`agents.train` (``mpenv-train``), :mod:`agents.evaluate` (``mpenv-eval``),
          :mod:`agents.logger` (TensorBoard run directory), :mod:`agents.plots` (value/policy maps).
"""
