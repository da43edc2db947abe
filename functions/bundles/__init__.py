"""Checks on uploaded Function code bundles (.zip files), one module per idea.

Pure Python on purpose (no Django): the upload form, the ``deploy_function``
command and the worker all call these, and the tests run in milliseconds.

* ``archive``: open, scan and extract a zip safely (limits, zip slip, links,
  zip bombs that lie in their headers); the only part the worker imports.
* ``handler``: the handler's path and the AST check of its definition.
* ``metadata``: ``import.metadata.json``.
* ``names``: the rules for Function, event parameter and secret names.
* ``errors``: ``BundleError``, which every check raises with a message that says what to fix.

Every public function that reads a zip takes a seekable binary file-like
object (a Django ``UploadedFile``, ``open(path, "rb")``, ``io.BytesIO``),
rewinds it before use and leaves it rewound, so callers can save the same
object afterwards.
"""
