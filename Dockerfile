# The fluxpy controllers image: every controller runs from it as `python -m controllers <component>`
# (see manifestgen/install.py, which renders the Deployments).
#
#   docker build -t ghcr.io/fluxpy/fluxpy-controllers:v0.1.0 .

# --- Go tools the controllers shell out to -----------------------------------------------------------
# The versions are those pinned in controllers/localcluster/tools.py (tests/test_dockerfile.py keeps the two
# in step). Static binaries, built from the Go module proxy as tools.py builds them.
FROM golang:1.26 AS tools
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-modcacherw GOBIN=/out
RUN go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.2
RUN go install helm.sh/helm/v4/cmd/helm@v4.3.1
RUN go install github.com/getsops/sops/v3/cmd/sops@v3.13.3
RUN go install filippo.io/age/cmd/age@v1.3.2
RUN go install filippo.io/age/cmd/age-keygen@v1.3.2

# --- fluxpy wheel --------------------------------------------------------------------------------------
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controllers ./controllers
COPY manifestgen ./manifestgen
COPY bootstrap ./bootstrap
COPY flux_cli ./flux_cli
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------------------
FROM python:3.11-slim
# git and ssh for the source controllers; CA certificates for HTTPS remotes and registries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client gnupg ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=tools /out/ /usr/local/bin/
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
# The root filesystem is read-only in the pod: bytecode was compiled at install time, and HOME points at
# the writable /tmp emptyDir (git and ssh write their state under it).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# nobody:nogroup, numeric so that runAsNonRoot can verify it.
USER 65534:65534
ENTRYPOINT ["python", "-m", "controllers"]
