"""Reports: figures, HTML and Markdown summaries, capacity plans and comparisons from results."""
