# attestmesh-indexer, for dstack CVMs (Intel TDX: linux/amd64). The build context is the repository
# root; deploy/indexer.Dockerfile.dockerignore lets in only the files below.
#
#   docker buildx build --platform linux/amd64 -f deploy/indexer.Dockerfile \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     --output type=image,name=<registry>/attestmesh-indexer:<version>,rewrite-timestamp=true,push=true .
#
# Reproducible in the same ways as deploy/sidecar.Dockerfile (digest-pinned base, hash-pinned pnpm,
# --frozen-lockfile, fixed file times); the digest the registry reports is what
# deploy/indexer/docker-compose.yaml pins.

# Node as the root package.json's "toolchain" pins it, Debian 12. The digest is the multi-platform
# index of that tag as published (refresh: docker buildx imagetools inspect node:22.23.3-bookworm-slim);
# keep it equal to deploy/sidecar.Dockerfile's.
FROM node:22.23.3-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS base
WORKDIR /app
ENV NODE_ENV=production

# ---- production dependencies, from the lockfile only --------------------------------------------------
FROM base AS deps
# pnpm as the root package.json's "toolchain" pins it: the native binary's package, checked against its
# registry sha512 (see deploy/sidecar.Dockerfile).
ARG PNPM_VERSION=12.21.0
ARG PNPM_SHA512=f1eb9f0a31d7b2929b352fe487cab843482a2683aebc2e10e69828b3a5d2f01cbf9c032d3fe8dff05d42c3d7abf38d247c05fe3c9fedb3e03daa72c4f75aef5d
RUN cd /tmp \
 && npm pack --silent "@pnpm/exe.linux-x64@${PNPM_VERSION}" \
 && echo "${PNPM_SHA512}  pnpm-exe.linux-x64-${PNPM_VERSION}.tgz" | sha512sum --check --strict - \
 && mkdir /opt/pnpm \
 && tar -xzf "pnpm-exe.linux-x64-${PNPM_VERSION}.tgz" -C /opt/pnpm --strip-components=1 \
 && ln -s /opt/pnpm/pnpm /usr/local/bin/pnpm \
 && rm "pnpm-exe.linux-x64-${PNPM_VERSION}.tgz" \
 && pnpm --version
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY shared/package.json shared/
COPY sidecar/package.json sidecar/
COPY indexer/package.json indexer/
COPY scripts/package.json scripts/
RUN pnpm install --frozen-lockfile --prod --ignore-scripts --filter "@attestmesh/indexer..." \
 && rm -f node_modules/.modules.yaml node_modules/.pnpm-workspace-state*.json

# ---- runtime ------------------------------------------------------------------------------------------
FROM base AS runtime
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/shared/node_modules shared/node_modules
COPY --from=deps /app/indexer/node_modules indexer/node_modules
COPY package.json ./
COPY shared/package.json shared/
COPY shared/src shared/src
COPY indexer/package.json indexer/
COPY indexer/src indexer/src
# No capability, no device: the official image's unprivileged `node` user (uid 1000). The files above
# stay root-owned, so the process cannot rewrite its own code.
USER node
# The WebSocket push server (ATTESTMESH_INDEXER_PORT).
EXPOSE 8080/tcp
# Nothing is fetched at run time: the indexer talks to the RPC, the dstack socket and its subscribers.
ENTRYPOINT ["node", "indexer/src/bin.mjs"]
