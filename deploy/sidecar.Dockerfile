# attestmesh-sidecar, for dstack CVMs (Intel TDX: linux/amd64). The build context is the repository
# root; deploy/sidecar.Dockerfile.dockerignore lets in only the files below.
#
#   docker buildx build --platform linux/amd64 -f deploy/sidecar.Dockerfile \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     --output type=image,name=<registry>/attestmesh-sidecar:<version>,rewrite-timestamp=true,push=true .
#
# Reproducible: the base image is pinned by digest, pnpm by version and sha512, the dependencies by
# pnpm-lock.yaml (--frozen-lockfile), the Debian packages by version; SOURCE_DATE_EPOCH and
# rewrite-timestamp fix the file times. The image digest the registry reports is what
# deploy/node/docker-compose.yaml pins, and so what the compose hash attests.

# Node as the root package.json's "toolchain" pins it, Debian 12. The digest is the multi-platform
# index of that tag as published (refresh: docker buildx imagetools inspect node:22.23.3-bookworm-slim);
# test/deploy checks that it is a well-formed pin and that the tag matches the toolchain.
FROM node:22.23.3-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS base
WORKDIR /app
ENV NODE_ENV=production

# ---- production dependencies, from the lockfile only --------------------------------------------------
FROM base AS deps
# pnpm as the root package.json's "toolchain" pins it. Since pnpm 11 the npm package is a launcher that
# fetches a native binary on first use; the binary's own package is fetched here instead and checked
# against its registry sha512 (npm view @pnpm/exe.linux-x64@<version> dist.integrity, as hex).
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
# Every workspace manifest, so the lockfile is checked against the whole workspace.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY shared/package.json shared/
COPY sidecar/package.json sidecar/
COPY indexer/package.json indexer/
COPY scripts/package.json scripts/
# The sidecar and the workspace packages it uses, production dependencies only, no install scripts.
# pnpm's own bookkeeping files carry timestamps and the store path; nothing reads them at run time.
RUN pnpm install --frozen-lockfile --prod --ignore-scripts --filter "@attestmesh/sidecar..." \
 && rm -f node_modules/.modules.yaml node_modules/.pnpm-workspace-state*.json

# ---- build: the sidecar as one JavaScript bundle (sidecar/build/bundle.ts, esbuild) ----------------------
# Running the TypeScript sources would make Node load its type stripper and hold every module's source
# for the life of the process (about 60 MB more resident memory at rest); the image runs the bundle.
FROM deps AS build
# The sidecar's development dependencies too (esbuild and its linux-x64 binary package), from the same
# lockfile, into fresh node_modules (the base image's NODE_ENV=production would leave them out). esbuild
# finds its binary package without its install script.
RUN rm -rf node_modules shared/node_modules sidecar/node_modules \
 && NODE_ENV=development pnpm install --frozen-lockfile --ignore-scripts --filter "@attestmesh/sidecar..."
COPY shared/src shared/src
COPY sidecar/src sidecar/src
COPY sidecar/build sidecar/build
RUN node sidecar/build/bundle.ts

# ---- runtime ------------------------------------------------------------------------------------------
FROM base AS runtime
# ip(8) and wg(8) drive the interface; wireguard-go is the userspace fallback when the guest kernel has
# no WireGuard module; nft(8) keeps the mesh port to datagrams that came through WireGuard. Versions of Debian 12 (bookworm); a version Debian replaced fails the build
# rather than changing the image silently. No shell script runs at run time, so nothing else is added.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends \
      iproute2=6.1.0-3 \
      nftables=1.0.6-2+deb12u2 \
      wireguard-go=0.0.20220316-1+b4 \
      wireguard-tools=1.0.20210914-1+b1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
      /var/cache/ldconfig/aux-cache
# The bundle holds the sidecar and every dependency it uses (libsodium's WebAssembly inlined,
# libsecp256k1's in secp256k1.wasm beside it): no node_modules and no sources in the image.
COPY package.json ./
COPY --from=build /app/sidecar/dist sidecar/dist
# The sidecar stays root inside its container. It needs CAP_NET_ADMIN for ip, wg and wireguard-go, and
# Docker gives capabilities added with cap_add to root only: a non-root process gets them in its
# bounding set, not its effective set (no ambient capabilities), and file capabilities on the three
# binaries would be ignored under no-new-privileges. The compose file drops every other capability,
# so this root holds NET_ADMIN and nothing else. The application container runs as `node` (uid 1000).
USER root
# /healthz and /metrics; WireGuard.
EXPOSE 9090/tcp 51820/udp
# V8's young generation capped at a 1 MB semi-space and one V8 background thread: about 20 MB and 5 MB
# less resident memory at rest (SIDECAR_NODE_OPTIONS in sidecar/build/bundle.ts, which the devnet's
# sidecars use too).
ENV NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1"
# The built bundle (stage `build`). Nothing is fetched at run time: the sidecar talks to the RPC, the
# dstack socket and its WireGuard peers.
ENTRYPOINT ["node", "sidecar/dist/attestmesh-sidecar.mjs"]
