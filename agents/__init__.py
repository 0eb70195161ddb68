"""Hand-written reinforcement-learning agents, one algorithm per file.

Tabular:  :mod:`agents.dp` (policy evaluation, value iteration, policy iteration),
          :mod:`agents.mc` (Monte Carlo prediction and control),
          :mod:`agents.td` (TD(0), SARSA, expected SARSA, Q-learning), sharing :mod:`agents.tabular`.
Deep:     :mod:`agents.dqn` (with :mod:`agents.buffers`), :mod:`agents.reinforce`,
          :mod:`agents.actor_critic` (A2C), sharing :mod:`agents.networks`, :mod:`agents.policies`,
          :mod:`agents.returns` and :mod:`agents.run` (budget, device, checkpoints, resume).
Tools:    :mod:`agents.train` (``mpenv-train``), :mod:`agents.evaluate` (``mpenv-eval``, keep-the-best),
          :mod:`mpenv.logger` (TensorBoard run directory), :mod:`mpenv.checkpoint`, :mod:`agents.plots`,
          :mod:`agents.envs`, :mod:`agents.demo` (``make demo``).
"""
