"""The comparison gallery of an output root: pages (``build``) from the pair folders (``entries``), laid out as
a grid or a sweep (``layout``), with thumbnails and contact sheets (``images``), loss charts (``chart``) and a
server for it (``serve``)."""

from tasks.gallery.build import build_gallery

__all__ = ["build_gallery"]
