"""Results: MLflow runs → polars frames → paper-style tables (LaTeX, Markdown, CSV), plots and reports.

Modules (each imports polars; plotting and MLflow only inside functions):

* :mod:`zslbench.results.frames` — runs of an experiment as a frame, seed aggregation, mixing rules;
* :mod:`zslbench.results.scores` — stored test scores (cached downloads) and re-evaluation under a γ policy;
* :mod:`zslbench.results.tables` — main, ablation and sensitivity tables (a format-free table model);
* :mod:`zslbench.results.render` — their LaTeX, Markdown and CSV renderings;
* :mod:`zslbench.results.plots` — sensitivity, seen–unseen curves and kept-patch plots;
* :mod:`zslbench.results.report` — the Markdown + HTML report of an experiment.

``reported.csv`` holds the published numbers (PROTOCOL.md §5, SVIP.md §9) with source and caveat.
"""
