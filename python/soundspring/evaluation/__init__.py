"""Evaluation: speech metrics, evaluation sets, codec / SpringLM / rate-distortion reports
and the loss sweep against Opus (the ``soundspring eval`` commands are in ``commands.eval``)."""
