# syntax=docker/dockerfile:1
# One image for `mtls-egress controller` and `mtls-egress agent`.
#   docker build -t mtls-egress:0.1.0 .
#   docker run --rm mtls-egress:0.1.0 inspect /data/partner.p12 --password-env PFX_PASSWORD

ARG NODE_IMAGE=node:24-trixie-slim

# --- Compile TypeScript with the full dependency tree.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The optional secret npm-ca is for build machines that reach the npm registry through
# a TLS-intercepting proxy (`--secret id=npm-ca,src=/etc/ssl/certs/ca-certificates.crt`).
# A secret mount is never stored in a layer; without it, npm trusts Node's own CAs.
RUN --mount=type=secret,id=npm-ca,target=/run/secrets/npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# --- Runtime dependencies only: no TypeScript, no type packages, no bundled Node.
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm-ca,target=/run/secrets/npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- Runtime: the controller, and the proxy pod's agent with the data planes it runs as
# its own children (Debian trixie's nginx 1.26 and HAProxy 3.0), so `nginx -t` and
# `haproxy -c` judge a config with the very binary that serves it, and nothing is copied
# between images that could drift apart. ca-certificates: the trust store for partners whose binding names no
# serverCA. The packages' own configs are never read (the agent runs them with its own).
FROM ${NODE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx haproxy ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
 && nginx -v && haproxy -v
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
# A numeric non-root user, so runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
# No core dumps: the controller and the agent hold every binding's decoded private key,
# and a crash would write them to the node's disk. prlimit (util-linux, Essential in
# Debian) sets RLIMIT_CORE to 0, soft and hard, so nothing in the container can raise it,
# and execs node; HAProxy and nginx, the agent's children, inherit it.
ENTRYPOINT ["prlimit", "--core=0", "--", "node", "/app/dist/cli.js"]
CMD ["--help"]
