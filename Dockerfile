# syntax=docker/dockerfile:1
# One image for `mtls-egress controller` and `mtls-egress agent`.
#   docker build -t mtls-egress:0.1.0 .
#   docker run --rm mtls-egress:0.1.0 inspect /data/partner.p12 --password-env PFX_PASSWORD

ARG NODE_IMAGE=node:24-bookworm-slim

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

# --- Runtime. Slim rather than distroless: the proxy pod's agent runs nginx -t through
# a small shell wrapper around the nginx image's own binary (see deploy/proxy.yaml).
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
# A numeric non-root user, so runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--help"]
