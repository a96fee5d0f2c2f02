"""Pages people look at: a run's or a batch's ``report.html``, rendered from plain inputs.

Pure code (inputs in, one HTML string out): no AWS, no ledger, no flows. Each page is one
self-contained file — inline CSS and SVG charts drawn here, no scripts, fonts or requests — so it
opens from S3, an email attachment or a laptop offline. The runs and inference flows read the
inputs (bounded) and write the pages; the CLI renders the same pages for a run still going.
"""
