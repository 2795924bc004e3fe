"""Synthetic RGB-D driving data: the scene model (`scene`), its ray caster (`render`), a recorded drive with the
depth sensor's imperfections (`sequence`) and the on-disk format, written and read (`files`)."""
