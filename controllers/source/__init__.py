"""The source-controller: fetches from Git, OCI, Helm repositories and buckets, and publishes immutable
artifacts (normalised tarballs and files) that the other controllers download over HTTP.

``storage`` keeps and serves the artifacts; ``common`` is what every source reconciler shares (artifact
status, conditions and reasons, events, garbage collection, secrets); one module per kind reconciles it.
"""
