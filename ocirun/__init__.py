"""ocirun: an OCI container runtime."""
VERSION = "0.1.0"
COMMIT = "unknown"
# The runtime-spec release this runtime implements (config.md ociVersion).
SPEC_VERSION = "1.2.0"
