"""Learning LoCUS heads: landmarks and masks, batch sampling, feature caching, the trainer, validation.

Submodules are imported on use (``locus_core.training.run``, ``.trainer``, ...) so that importing the
package stays cheap.
"""
