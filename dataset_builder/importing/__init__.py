"""``python -m dataset_builder import``: LLaVA-NeXT-format annotations (JSON / JSONL / Parquet) in, training rows out.

The output is a dataset folder like ``build``'s: configs ``stage1`` / ``stage2`` / ``stage3`` by probed video duration
(or one image config), a card with statistics and plots, and ``import_errors.jsonl`` naming every row left out.

Modules, one responsibility each (this ``__init__`` imports none of them, so ``--help`` stays light):

* :mod:`~dataset_builder.importing.conversations` -- a LLaVA-NeXT conversation -> the kit's chat messages (pure).
* :mod:`~dataset_builder.importing.readers` -- annotation files -> resumable chunks of rows.
* :mod:`~dataset_builder.importing.media` -- media paths under ``--media-root``, header probes (parallel, cached),
  embedded images written to files.
* :mod:`~dataset_builder.importing.settings` -- what an import is asked to do, and what it did.
* :mod:`~dataset_builder.importing.importer` -- the resumable import itself.
* :mod:`~dataset_builder.importing.card` -- the imported dataset's card.
"""
