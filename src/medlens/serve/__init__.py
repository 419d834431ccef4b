"""Serving a run folder: the inference service (FastAPI), its web page, and the PACS link.

The service lives in ``medlens.serve.app`` (``create_app``, ``serve``); importing this package
imports nothing else, so the PACS modules do not pull in the web stack.
"""
