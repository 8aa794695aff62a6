"""Real servers the tests run on loopback (git over HTTP and SSH, an OCI registry, a Helm repository, S3),
each started and stopped by a fixture, bounded in time. Import the fixtures into a test module to use them."""
