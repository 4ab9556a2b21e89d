"""Figures and REPORT.md sections: ``make_figures(out_dir)`` and ``summary_markdown(out_dir)`` per experiment."""
