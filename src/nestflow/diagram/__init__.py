"""Pictures of pipelines: a text outline (``to_text``) and Graphviz drawings (``visualize``)."""
