"""Image automation (``image.toolkit.fluxcd.io/v1``): the image-reflector and image-automation controllers.

So far: :mod:`.policy`, the tag selection of ImagePolicies (semver, alphabetical, numerical, filterTags).
"""
