# syntax=docker/dockerfile:1
# ringmq broker image: Debian 12 slim, ringmqd and ringmqctl, the runtime libraries only, an unprivileged user.
#
#   docker build -t ringmq:0.1.0 .            (or podman/buildah build; BuildKit for the RUN --mount lines)
#
# Every step is a script from the tree, and CI runs the same scripts (tests/integration/test_25_container_recipe.py:
# build into a staging directory, install into a staging root, then checks the binaries run, the libraries
# `ldd` needs come from runtime-packages, the user, and that the default configuration is valid), so this
# recipe cannot rot although no container engine runs where the tests do. docs/operations.md, "Container image".
# Running it needs a seccomp profile that allows io_uring: k8s/seccomp-ringmq.json (k8s/README.md).

FROM debian:bookworm-slim AS build
# The build packages first, in a layer of their own (the same list and function scripts/test uses).
RUN --mount=type=bind,source=scripts/deps.sh,target=/tmp/deps.sh \
	bash -c '. /tmp/deps.sh && ringmq_need_pkgs $RINGMQ_BUILD_PKGS'
COPY . /src
RUN /src/scripts/container/build /src /build /stage

FROM debian:bookworm-slim
# The runtime libraries (scripts/container/runtime-packages), the staged files, the user ringmq (10001).
RUN --mount=type=bind,from=build,source=/stage,target=/tmp/stage \
	--mount=type=bind,source=scripts,target=/tmp/scripts \
	/tmp/scripts/container/install /tmp/stage /
USER 10001:10001
ENV RINGMQ_CONFIG=/etc/ringmq/ringmq.conf \
	RINGMQ_CONTROL_SOCKET=/run/ringmq/ringmq.sock
EXPOSE 1883 8883
# SIGTERM is the graceful shutdown (DISCONNECT 0x8B to MQTT 5 clients); the supervisor is PID 1 and reaps its
# workers itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ringmqd"]
