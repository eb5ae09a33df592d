# syntax=docker/dockerfile:1
# Pyramid: a static binary on distroless, running as the nonroot user.
#   docker build -t pyramid .
#   docker run --rm pyramid run --help

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads are cached in their own layer; source edits don't redo them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags="-s -w -X github.com/pyramid-crm/pyramid/metrics.Version=${VERSION}" \
      -o /out/pyramid ./cmd/pyramid

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pyramid /usr/local/bin/pyramid
# Numeric (distroless nonroot = 65532) so Kubernetes runAsNonRoot can check it.
USER 65532:65532
# In a container the HTTP listener (metrics, probes, API) must not be
# loopback-only; the default outside containers is 127.0.0.1:8080.
ENV PYRAMID_HTTP=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pyramid"]
CMD ["run"]
