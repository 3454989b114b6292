"""What the bot, the API and the CLI share about live models (L3: core, data, ml, storage).

The one current-model cache, the one promotion function (pointer + audit event), the fast scorer
verified against the model's own ``predict_proba``, and the paper trading of live signals.
"""
