"""Data: synthetic RGB-D driving clips, real data-set loaders, and the shared crop/resize transform."""
