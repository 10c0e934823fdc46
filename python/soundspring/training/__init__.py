"""Training of the codec (``trainer``) and of SpringLM (``lm``) on one resumable loop
(``loop``, ``distributed`` under torchrun); presets in ``soundspring.config``."""
