"""Rendering: a report as a list of blocks (document.py), written as Markdown and LaTeX (document.py,
latex.py) and compiled (texbuild.py); its figures (figures.py, curves.py) and tables (tables.py)."""
