"""Image automation (``image.toolkit.fluxcd.io/v1``): the image-reflector and image-automation controllers.

:mod:`.policy` selects tags (semver, alphabetical, numerical, filterTags); :mod:`.tags` is the tag database;
:mod:`.reflector` is the image-reflector-controller (ImageRepository, ImagePolicy); :mod:`.setters` rewrites
``# {"$imagepolicy": "ns:name[:tag|:name|:digest]"}`` markers byte for byte; :mod:`.automation` is the
image-automation-controller (ImageUpdateAutomation: checkout, update, commit, push).
"""
