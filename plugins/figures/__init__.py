"""The ``figures`` MkDocs plugin: runs ``python run`` blocks and shows their figures."""
