"""Sender authentication and policy: ``verifier`` computes SPF/DKIM/DMARC verdicts
(with ``dkim``, ``dmarc`` and ``dns``), ``policy`` (pure) decides hold or pass,
``gate`` is the worker step that joins them to the repository."""
