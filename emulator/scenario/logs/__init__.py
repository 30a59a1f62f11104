"""From CloudWatch logs to a scenario: ``lambda-freeze scenario from-logs`` reads the logs (``read`` and a module per
format; ``console``: tables copied from the CloudWatch console), rebuilds each execution environment's timeline
(``records``, ``rebuild``) and writes a scenario that ``lambda-freeze repro`` replays (``write``; ``timing``: when
each invocation starts, in turn or at its offset). ``lines`` holds the types every step shares; ``record`` writes
the emulator's own logs in the shape of ``aws logs tail``."""
